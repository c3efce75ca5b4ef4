"""The create config's checks and merging (dockyard.core.containers.config), without a daemon:
defaults merged with the image's config, dockerd's rules, and the errors in their exact words."""
from __future__ import annotations

import signal
from typing import Any

import pytest

from dockyard.core.containers import config, parse_signal
from dockyard.core.spec import DEFAULT_SHM_SIZE
from dockyard.hookspecs.errors import Conflict, InvalidParameter

IMAGE = {"Env": ["PATH=/usr/bin", "A=image"], "Cmd": ["sh"], "Entrypoint": None,
         "User": "app", "WorkingDir": "/srv", "Labels": {"from": "image", "both": "image"},
         "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT"}


def no_peer(name: str, what: str) -> Any:
    raise AssertionError(f"no peer expected, asked for {name} ({what})")


def raises(exc: type[Exception], message: str) -> Any:
    """pytest.raises on the exact message."""
    return pytest.raises(exc, match="^" + __import__("re").escape(message) + "$")


# -- Config ----------------------------------------------------------------------------------------
def test_image_config_fills_what_the_body_leaves_out() -> None:
    cfg = config.container_config({"Image": "img"}, IMAGE, "abc123")
    assert cfg["Hostname"] == "abc123" and cfg["Domainname"] == ""
    assert cfg["Cmd"] == ["sh"] and cfg["Entrypoint"] is None
    assert cfg["User"] == "app" and cfg["WorkingDir"] == "/srv"
    assert cfg["StopSignal"] == "SIGQUIT" and cfg["Image"] == "img"
    assert cfg["Env"] == ["PATH=/usr/bin", "A=image"]
    assert cfg["ExposedPorts"] == {"80/tcp": {}}
    assert cfg["AttachStdin"] is False and cfg["Tty"] is False and cfg["OnBuild"] is None
    assert "StopTimeout" not in cfg and "Shell" not in cfg and "Healthcheck" not in cfg


def test_body_wins_and_maps_merge() -> None:
    body = {"Image": "img", "Env": ["A=body", "B=1"], "Labels": {"both": "body"}, "User": "root",
            "ExposedPorts": {"443/tcp": {}}, "Hostname": "h", "StopSignal": "9", "StopTimeout": 3,
            "Tty": 1, "Shell": ["/bin/bash", "-c"]}
    cfg = config.container_config(body, IMAGE, "ignored")
    assert cfg["Env"] == ["A=body", "B=1", "PATH=/usr/bin"]  # the body's, then the image's others
    assert cfg["Labels"] == {"from": "image", "both": "body"}
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "443/tcp": {}}
    assert (cfg["User"], cfg["Hostname"], cfg["StopSignal"]) == ("root", "h", "9")
    assert cfg["StopTimeout"] == 3 and cfg["Tty"] is True and cfg["Shell"] == ["/bin/bash", "-c"]


def test_empty_user_means_the_images() -> None:  # what the docker CLI sends
    assert config.container_config({"User": ""}, IMAGE, "h")["User"] == "app"


def test_an_entrypoint_given_drops_the_images_cmd() -> None:
    cfg = config.container_config({"Entrypoint": ["/run"]}, IMAGE, "h")
    assert cfg["Entrypoint"] == ["/run"] and cfg["Cmd"] is None
    cfg = config.container_config({"Cmd": ["ls"]}, {**IMAGE, "Entrypoint": ["/ep"]}, "h")
    assert cfg["Entrypoint"] == ["/ep"] and cfg["Cmd"] == ["ls"]


def test_an_empty_entrypoint_clears_the_images() -> None:
    cfg = config.container_config({"Entrypoint": [""], "Cmd": ["ls"]}, {**IMAGE, "Entrypoint": ["/ep"]}, "h")
    assert cfg["Entrypoint"] is None and cfg["Cmd"] == ["ls"]


def test_no_command_at_all_is_refused() -> None:
    with raises(InvalidParameter, "no command specified"):
        config.container_config({"Entrypoint": [""]}, {}, "h")


def test_a_bad_stop_signal_is_refused() -> None:
    with raises(InvalidParameter, "Invalid signal: SIGNOPE"):
        config.container_config({"StopSignal": "SIGNOPE"}, IMAGE, "h")


def test_healthcheck_inherits_and_none_stays_as_given() -> None:
    image = {**IMAGE, "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5_000_000_000}}
    cfg = config.container_config({"Healthcheck": {"Retries": 2}}, image, "h")
    assert cfg["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 5_000_000_000, "Retries": 2}
    cfg = config.container_config({"Healthcheck": {"Test": ["NONE"]}}, image, "h")
    assert cfg["Healthcheck"] == {"Test": ["NONE"]}


# -- names and signals -----------------------------------------------------------------------------
def test_names() -> None:
    assert config.full_name("web") == "/web" and config.full_name("/web.1_a-b") == "/web.1_a-b"
    for bad in ("", "-web", "we b", "a/b"):
        with raises(InvalidParameter, f"Invalid container name ({bad}), only "
                                      "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"):
            config.full_name(bad)
    err = config.name_in_use("/web", "f" * 64)
    assert isinstance(err, Conflict) and err.message == (
        f'Conflict. The container name "/web" is already in use by container "{"f" * 64}". You '
        "have to remove (or rename) that container to be able to reuse that name.")


@pytest.mark.parametrize("given,num", [(None, signal.SIGKILL), ("", signal.SIGKILL), ("TERM", 15),
                                       ("sigterm", 15), ("SIGHUP", 1), (9, 9), ("64", 64),
                                       ("SIGRTMIN+2", signal.SIGRTMIN + 2),
                                       ("RTMAX-1", signal.SIGRTMAX - 1)])
def test_parse_signal(given: Any, num: int) -> None:
    assert parse_signal(given) == num


@pytest.mark.parametrize("bad", ["0", "65", "SIGFOO", "SIGRTMIN+x", -1])
def test_parse_signal_refuses(bad: Any) -> None:
    with raises(InvalidParameter, f"Invalid signal: {bad}"):
        parse_signal(bad)


def test_parse_time() -> None:
    assert config.parse_time("1970-01-01T00:00:10.5Z") == 10.5
    assert config.parse_time(config.ZERO_TIME) < 0 and config.parse_time("garbage") == 0.0


# -- HostConfig ------------------------------------------------------------------------------------
@pytest.mark.parametrize("key,value,words", [
    ("PortBindings", {"80/tcp": [{}]}, "port publishing"), ("PublishAllPorts", True, "port publishing"),
    ("ExtraHosts", ["a:1.2.3.4"], "--add-host"), ("Dns", ["1.1.1.1"], "--dns"),
    ("Links", ["db"], "--link")])
def test_a_network_peer_refuses_network_options(key: str, value: Any, words: str) -> None:
    with raises(InvalidParameter, f"conflicting options: {words} and the container type network mode"):
        config.check_net_peer_options({}, {key: value})


def test_a_network_peer_refuses_a_mac_or_a_hostname() -> None:
    with raises(InvalidParameter, "conflicting options: mac-address and the container type network mode"):
        config.check_net_peer_options({"MacAddress": "02:42:ac:11:00:02"}, {})
    with raises(InvalidParameter, "conflicting options: hostname and the network mode"):
        config.check_net_peer_options({"Hostname": "x"}, {})
    config.check_net_peer_options({}, {"Dns": [], "PublishAllPorts": False})


@pytest.mark.parametrize("host,message", [
    ({"Dns": ["8.8.8.8", "nope"]}, "'nope' is not an IP address (--dns)"),
    ({"CgroupParent": "a/../b"}, "invalid cgroup parent 'a/../b'"),
    ({"CgroupParent": "a:b"}, "invalid cgroup parent 'a:b'"),
    ({"UsernsMode": "private"}, "invalid USER mode: 'private' (valid: host, or empty)"),
    ({"PidMode": "bogus"}, "invalid PID mode: 'bogus'"),
    ({"UTSMode": "container:x"}, "invalid UTS mode: 'container:x'"),
])
def test_host_options_refused(host: dict[str, Any], message: str) -> None:
    with raises(InvalidParameter, message):
        config.check_host_options(host, False, no_peer)


def test_host_options_accepted() -> None:
    config.check_host_options({"Dns": ["::1"], "CgroupParent": "/my/group", "UsernsMode": "host",
                               "PidMode": "host", "IpcMode": "shareable", "UTSMode": "host"},
                              False, no_peer)


def test_namespace_modes_name_their_peer() -> None:
    asked: list[tuple[str, str]] = []
    config.check_ns_modes({"PidMode": "container:db", "IpcMode": "container:cache"}, False,
                          lambda name, what: asked.append((name, what)))
    assert asked == [("db", "join the pid namespace of"), ("cache", "join the ipc namespace of")]


def test_user_namespaces_refuse_host_namespaces_and_privileged() -> None:
    with raises(InvalidParameter, "--pid=host is not supported with user namespaces "
                                  "(userns-remap); add --userns=host"):
        config.check_host_options({"PidMode": "host"}, True, no_peer)
    with raises(InvalidParameter, "privileged mode is incompatible with user namespaces.  You must "
                                  "run the container in the host namespace when running "
                                  "privileged mode (--userns=host)"):
        config.check_host_options({"Privileged": True}, True, no_peer)
    # --userns=host lifts both; uts=host is allowed under remapping
    config.check_host_options({"Privileged": True, "PidMode": "host", "UsernsMode": "host"}, True, no_peer)
    config.check_host_options({"UTSMode": "host"}, True, no_peer)


def test_host_config_defaults_and_empty_values_keep_them() -> None:
    out = config.host_config({"AutoRemove": None, "Memory": 0, "CpuShares": 512, "ShmSize": 0,
                              "RestartPolicy": None, "NetworkMode": "mynet"},
                             "container:" + "a" * 64, ["/db:/web/db"], "runc")
    assert out["NetworkMode"] == "container:" + "a" * 64  # recorded by id
    assert out["AutoRemove"] is False and out["CpuShares"] == 512 and out["Memory"] == 0
    assert out["ShmSize"] == DEFAULT_SHM_SIZE and out["Runtime"] == "runc"
    assert out["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert out["LogConfig"] == {"Type": "json-file", "Config": {}} and out["Links"] == ["/db:/web/db"]
    assert config.host_config({}, "default", [], "native")["Links"] is None


def test_restart_policy() -> None:
    assert config.restart_policy({"RestartPolicy": {"Name": "", "MaximumRetryCount": None}}) == \
        {"Name": "no", "MaximumRetryCount": 0}
    assert config.restart_policy({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}}) == \
        {"Name": "on-failure", "MaximumRetryCount": 3}
    assert config.restart_policy({"RestartPolicy": {"Name": "no"}, "AutoRemove": True})["Name"] == "no"
    with raises(InvalidParameter, "can't create 'AutoRemove' container with restart policy"):
        config.restart_policy({"RestartPolicy": {"Name": "always"}, "AutoRemove": True})


# -- LogConfig -------------------------------------------------------------------------------------
def test_log_config_defaults_and_daemon_opts_under_the_containers() -> None:
    assert config.log_config({}, {}) == {"Type": "json-file", "Config": {}}
    daemon = {"log-driver": "json-file", "log-opts": {"max-size": "1m", "max-file": "3"}}
    assert config.log_config({"Config": {"max-file": "5"}}, daemon) == \
        {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "5"}}
    assert config.log_config({"Type": "none"}, daemon) == {"Type": "none", "Config": {}}
    assert config.log_config({}, {"log-driver": "none"})["Type"] == "none"


@pytest.mark.parametrize("given,message", [
    ({"Type": "syslog"}, "logger: no log driver named 'syslog' is registered "
                         "(this engine has json-file and none)"),
    ({"Type": "nosuch"}, "logger: no log driver named 'nosuch' is registered"),
    ({"Type": "none", "Config": {"max-size": "1m"}}, "unknown log opt 'max-size' for none log driver"),
    ({"Config": {"mode": "blocking"}}, "unknown log opt 'mode' for json-file log driver"),
    ({"Config": {"max-size": "lots"}}, "invalid max-size 'lots'"),
    ({"Config": {"max-size": "0"}}, "max-size must be a positive number"),
    ({"Config": {"max-file": "0"}}, "max-file cannot be less than 1"),
    ({"Config": {"max-file": "x"}}, "max-file cannot be less than 1"),
    ({"Config": {"compress": "true"}}, "compress is not supported by this engine's json-file driver"),
])
def test_log_config_refused(given: dict[str, Any], message: str) -> None:
    with raises(InvalidParameter, message):
        config.log_config(given, {})


# -- update and commit -----------------------------------------------------------------------------
def test_update_values() -> None:
    host = {"Memory": 1 << 20, "CpuQuota": 50000, "CpuPeriod": 100000, "AutoRemove": False}
    new, updated = config.update_values({"Memory": 2 << 20, "CpusetCpus": 0, "PidsLimit": 0}, host)
    assert new == {"Memory": 2 << 20} and updated["Memory"] == 2 << 20 and updated["CpuQuota"] == 50000
    new, updated = config.update_values({"NanoCpus": 10**9, "CpusetMems": "0"}, host)
    assert new == {"NanoCpus": 10**9, "CpusetMems": "0"}
    assert "CpuQuota" not in updated and "CpuPeriod" not in updated  # NanoCpus replaces them
    assert host["CpuQuota"] == 50000  # the record's is not changed in place


def test_update_refusals() -> None:
    with raises(InvalidParameter, "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set"):
        config.update_values({"NanoCpus": 10**9, "CpuQuota": 1000}, {})
    with raises(InvalidParameter, "Restart policy cannot be updated because AutoRemove is enabled "
                                  "for the container"):
        config.update_values({"RestartPolicy": {"Name": "always"}}, {"AutoRemove": True})
    config.update_values({"RestartPolicy": {"Name": "no"}}, {"AutoRemove": True})


def test_updated_policy() -> None:
    assert config.updated_policy({}) is None and config.updated_policy({"RestartPolicy": {"Name": ""}}) is None
    assert config.updated_policy({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": "2"}}) == \
        {"Name": "on-failure", "MaximumRetryCount": 2}


def test_committed_config() -> None:
    cfg = {"Hostname": "h", "User": "", "Env": ["A=1"], "Cmd": ["sh"], "Labels": {}, "Volumes": None,
           "Tty": True, "Shell": ["/bin/sh", "-c"], "Image": "img"}
    assert config.committed_config(cfg, None) == {"Env": ["A=1"], "Cmd": ["sh"], "Shell": ["/bin/sh", "-c"]}
    assert config.committed_config(cfg, {"Cmd": ["top"], "User": None, "WorkingDir": "/w"}) == \
        {"Env": ["A=1"], "Cmd": ["top"], "Shell": ["/bin/sh", "-c"], "WorkingDir": "/w"}
