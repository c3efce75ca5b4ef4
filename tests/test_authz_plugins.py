"""Docker authorization plugins: ``dockyardd --authorization-plugin NAME`` asks a real plugin
server (tests/authz_plugin.py, on a unix socket in a private plugin directory) about every
request (``AuthZReq``) and every answer (``AuthZRes``), and answers its refusals and failures in
dockerd's words."""
from __future__ import annotations

import os
from typing import Iterator

import pytest

from conftest import Daemon
from plugin_server import Served, plugin_daemon, running_plugin

SERVER = os.path.join(os.path.dirname(__file__), "authz_plugin.py")


class AuthzPlugin(Served):
    prefix = "dkyauthz"
    namespace = "AuthZPlugin."


@pytest.fixture
def authz() -> Iterator[AuthzPlugin]:
    with running_plugin(SERVER, AuthzPlugin) as p:
        yield p


@pytest.fixture
def adaemon(authz: AuthzPlugin) -> Iterator[Daemon]:
    with plugin_daemon(authz, None, extra_args=["--authorization-plugin", authz.name]) as d:
        yield d


def test_authz_plugin_sees_requests_and_answers(adaemon: Daemon, authz: AuthzPlugin) -> None:
    api = adaemon.api
    # allowed: the plugin saw the request as sent (version, query) and the answer
    status, vol = api.post("/v1.43/volumes/create?x=1", {"Name": "seen"},
                           headers={"Authorization": "Bearer secret", "X-Registry-Auth": "abc",
                                    "X-Custom": "kept"})
    assert status == 201, vol
    req = [c for c in authz.calls("AuthZReq") if c["body"]["RequestUri"] == "/v1.43/volumes/create?x=1"]
    (req,) = req
    assert req["body"]["RequestMethod"] == "POST" and req["request"] == {"Name": "seen"}
    headers = req["body"]["RequestHeaders"]
    assert headers["X-Custom"] == "kept" and headers["Content-Type"] == "application/json"
    assert not {"Authorization", "X-Registry-Auth"} & set(headers), headers
    assert "User" not in req["body"]
    (res,) = [c for c in authz.calls("AuthZRes") if c["body"]["RequestUri"] == "/v1.43/volumes/create?x=1"]
    assert res["body"]["ResponseStatusCode"] == 201 and res["response"]["Name"] == "seen"
    assert res["request"] == {"Name": "seen"}

    # refused before the handler: nothing was made
    status, err = api.post("/volumes/create", {"Name": "nope", "Labels": {"authz": "deny"}})
    assert status == 403, err
    assert err["message"] == f"authorization denied by plugin {authz.name}: labels say no"
    assert api.get("/volumes/nope")[0] == 404
    # the plugin's Err: 500 in dockerd's words
    status, err = api.post("/volumes/create", {"Name": "nope", "Labels": {"authz": "err"}})
    assert status == 500, err
    assert err["message"] == f"plugin {authz.name} failed with error: plugin broke"
    # refused after the handler (AuthZRes): the answer is replaced by the refusal
    status, err = api.post("/volumes/create", {"Name": "hidden-one"})
    assert status == 403 and err["message"].endswith(": not for your eyes"), err
    status, err = api.get("/volumes/hidden-one")
    assert status == 403, err
    # info names the plugin
    assert api.get("/info")[1]["Plugins"]["Authorization"] == [authz.name]


def test_unreachable_authz_plugin_fails_closed(tmp_path) -> None:
    """A configured plugin that cannot be found refuses every request (500), as dockerd's."""
    from dockyard.core.daemon.authz import AuthzPlugins
    from dockyard.core.dockerplugins import PluginDirs
    from dockyard.hookspecs.errors import DockyardError, Forbidden

    plugins = AuthzPlugins(PluginDirs([str(tmp_path)]), ["absent", "absent"])
    assert plugins.names == ["absent"]
    with pytest.raises(DockyardError, match="^plugin absent failed with error: .*not found") as e:
        plugins.ask("AuthZReq", {"RequestMethod": "GET", "RequestUri": "/_ping"})
    assert not isinstance(e.value, Forbidden)
