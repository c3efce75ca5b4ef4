"""Unit tests of the Go text/template subset used by ``--format`` (pure logic)."""
import pytest

from dockyard.cli.gotemplate import Template, TemplateError, go_str, render

DATA = {
    "Id": "abc123",
    "Name": "/web",
    "State": {"Status": "running", "Running": True, "Pid": 42, "ExitCode": 0},
    "Config": {"Env": ["A=1", "B=2"], "Labels": {"b": "2", "a": "1", "com.x.y": "z"},
               "Entrypoint": None, "Cmd": ["echo", "hi"]},
    "Mounts": [],
    "Size": 1.5,
}


@pytest.mark.parametrize("src,expected", [
    ("{{.Id}}", "abc123"),
    ("id={{.Id}} name={{.Name}}", "id=abc123 name=/web"),
    ("{{.State.Status}}", "running"),
    ("{{.State.Pid}}", "42"),
    ("{{.State.Running}}", "true"),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{.Config.Labels}}", "map[a:1 b:2 com.x.y:z]"),
    ("{{.Config.Entrypoint}}", "<nil>"),
    ("{{.Missing}}", "<no value>"),
    ("{{.Size}}", "1.5"),
    ("{{json .Config.Env}}", '["A=1","B=2"]'),
    ("{{json .State}}", '{"Status":"running","Running":true,"Pid":42,"ExitCode":0}'),
    ("{{json .Config.Entrypoint}}", "null"),
    ('{{index .Config.Labels "com.x.y"}}', "z"),
    ("{{index .Config.Env 1}}", "B=2"),
    ("{{range .Config.Env}}[{{.}}]{{end}}", "[A=1][B=2]"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "a=1;b=2;com.x.y=z;"),
    ("{{range $i, $e := .Config.Cmd}}{{$i}}:{{$e}} {{end}}", "0:echo 1:hi "),
    ("{{range .Mounts}}x{{else}}none{{end}}", "none"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if .Mounts}}m{{else if .Config.Env}}env{{else}}no{{end}}", "env"),
    ('{{if eq .State.Status "running"}}yes{{end}}', "yes"),
    ('{{if ne .State.Status "running"}}yes{{else}}no{{end}}', "no"),
    ("{{if and .State.Running (gt .State.Pid 0)}}ok{{end}}", "ok"),
    ("{{if or .Mounts .Id}}ok{{end}}", "ok"),
    ("{{if not .Mounts}}empty{{end}}", "empty"),
    ("{{len .Config.Env}}", "2"),
    ("{{len .Config.Labels}}", "3"),
    ("{{lower .State.Status}} {{upper .State.Status}}", "running RUNNING"),
    ("{{.State.Status | upper}}", "RUNNING"),
    ('{{join .Config.Env ","}}', "A=1,B=2"),
    ("{{println .Id}}", "abc123\n"),
    ('{{printf "%s-%d" .Id .State.Pid}}', "abc123-42"),
    ('{{printf "%-6s|" "ab"}}', "ab    |"),
    ('{{split "a:b:c" ":"}}', "[a b c]"),
    ("{{with .State}}{{.Status}}{{end}}", "running"),
    ("{{with .Mounts}}x{{else}}nothing{{end}}", "nothing"),
    ("{{$n := .Name}}{{$n}}", "/web"),
    ("{{range .Config.Env}}{{$.Id}} {{end}}", "abc123 abc123 "),
    ("{{(index .Config.Env 0)}}", "A=1"),
    ("{{(.State).Status}}", "running"),
    ("a  {{- .Id -}}  b", "aabc123b"),
    ("{{/* a comment */}}x", "x"),
    ("{{title \"hello world\"}}", "Hello World"),
    ("{{truncate .Id 3}}", "abc"),
    ("{{`raw\\n`}}", "raw\\n"),
    ('{{"quoted\\n"}}', "quoted\n"),
    ("{{.}}", go_str(DATA)),
])
def test_render(src, expected):
    assert render(src, DATA) == expected


class Ctx:
    """Like docker's ps formatting context: properties and methods with arguments."""

    @property
    def ID(self):
        return "abc"

    def Label(self, name):
        return {"x": "1"}.get(name, "")


def test_object_fields_and_methods():
    assert render('{{.ID}} {{.Label "x"}}', Ctx()) == "abc 1"


@pytest.mark.parametrize("src", [
    "{{.Id",                       # unclosed action is kept as text by Go; ours too
])
def test_unclosed_action_is_text(src):
    assert render(src, DATA) == src


@pytest.mark.parametrize("src,msg", [
    ("{{nosuchfunc .Id}}", 'function "nosuchfunc" not defined'),
    ("{{if .Id}}x", "unclosed"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{template \"x\"}}", "not supported"),
    ("{{define \"x\"}}{{end}}", "not supported"),
    ("{{.Id.Foo}}", "can't evaluate field Foo"),
    ("{{index .Config.Env 5}}", "out of range"),
    ("{{$undefined}}", "undefined variable"),
    ("{{.Id 1}}", "not a method"),
    ("{{range .Id}}x{{end}}", "range can't iterate"),
    ("{{}}", "missing value"),
    ('{{printf "%z" 1}}', "not supported"),
])
def test_errors(src, msg):
    with pytest.raises(TemplateError) as ei:
        Template(src).execute(DATA)
    assert msg in str(ei.value)


def test_go_str_values():
    assert go_str(True) == "true"
    assert go_str(None) == "<nil>"
    assert go_str([1, "a", [2]]) == "[1 a [2]]"
    assert go_str({"b": 1, "a": [True]}) == "map[a:[true] b:1]"
    assert go_str(3.0) == "3"


def test_template_reusable():
    t = Template("{{.A}}")
    assert t.execute({"A": 1}) == "1"
    assert t.execute({"A": 2}) == "2"
