"""``kaslite serve`` from the command line: light to list, one-line errors before the port opens."""

import json
import socket
import subprocess
import sys

import pytest

HEAVY = ["fastapi", "uvicorn", "torch", "starlette"]

# Runs the console-script entry point and reports, at exit, which heavy modules got imported.
PROBE = """
import atexit, json, sys
atexit.register(lambda: print("HEAVY=" + json.dumps(sorted(m for m in {heavy} if m in sys.modules)), file=sys.stderr))
sys.argv = ["kaslite", *{args}]
from kaslite.cli.main import main
main()
"""


def kaslite(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kaslite", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [["--help"], ["serve", "--help"]])
def test_listing_commands_imports_no_server_and_no_torch(args):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY, args=args)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "serve" in proc.stdout
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY=")]
    assert json.loads(line.removeprefix("HEAVY=")) == []


def test_serve_is_registered_by_the_serve_plugin():
    entries = json.loads(kaslite("plugins", "--json").stdout)
    (serve,) = [e for e in entries if e["name"] == "serve"]
    assert (serve["distribution"], serve["version"], serve["error"]) == ("kaslite-serve", "0.1.0", None)
    assert serve["registered"] == {"kaslite_commands": ["serve"]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "{tmp}/missing.pt"], "Error: cannot serve --model '{tmp}/missing.pt': model file "
         "'{tmp}/missing.pt' does not exist"),
        (["--model", "{tmp}/bad.pt"], "Error: cannot serve --model '{tmp}/bad.pt': '{tmp}/bad.pt' is not a kaslite "
         "model file"),
        (["--model", "m.pt", "--port", "70000"], "Error: invalid --port = 70000: must be a port number in 0..65535"),
        (["--model", "m.pt", "--max-batch-rows", "0"], "Error: invalid --max-batch-rows = 0: must be an integer >= 1"),
        ([], "Error: Missing option '--model'. (see 'kaslite serve --help')"),
    ],
)  # fmt: skip
def test_start_up_errors_are_one_line_exit_2(tmp_path, args, message):
    import torch

    torch.save({"format": "something else"}, tmp_path / "bad.pt")
    proc = kaslite("serve", *[arg.format(tmp=tmp_path) for arg in args])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [message.format(tmp=tmp_path)]


def test_a_taken_port_is_one_line_exit_2(served_file):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = kaslite("serve", "--model", str(served_file), "--port", str(port))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_an_unknown_scheme_lists_the_model_sources():
    proc = kaslite("serve", "--model", "bucket://models/a.pt")
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert line.startswith("Error: unknown model source 'bucket'; available: ") and "file" in line
