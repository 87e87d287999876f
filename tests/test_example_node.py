"""The example custom node package (examples/comfyui_sparse_node), end to end.

In a minimal ``comfy`` tree (always): the package loads as ComfyUI loads it, stages
comfy/sparse.py, its node reports native within tolerance and refuses bad input.

In a real ComfyUI server: runs only when COMFYUI_DIR names a ComfyUI checkout whose
requirements are installed in this Python (or in COMFYUI_PYTHON).  The test starts
``main.py --cpu`` on 127.0.0.1 and a free port with ``--base-directory`` set to a temporary
folder (custom_nodes, models, input, output, user and temp all live there; the database is
in memory), copies the example into that folder's custom_nodes, queues the example
workflow over the HTTP API, waits for ``/history/<id>``, checks the report, queues a bad
input and checks that its error reaches the history while the server keeps answering, and
always stops the server it started.  The only thing written into the checkout is the
``comfy/sparse.py`` link the node stages; the test removes it again if it was not there
before.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from _tools import ROOT

COMFYUI_DIR = os.environ.get("COMFYUI_DIR", "")
EXAMPLE = os.path.join(ROOT, "examples", "comfyui_sparse_node")
START_TIMEOUT = 240  # seconds: ComfyUI imports torch and every built-in node first
RUN_TIMEOUT = 120

needs_comfyui = pytest.mark.skipif(
    not os.path.isfile(os.path.join(COMFYUI_DIR, "main.py")),
    reason="set COMFYUI_DIR to a ComfyUI checkout to run the end-to-end node test")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url, data=None, timeout=10):
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Server:
    def __init__(self, base, log_path):
        self.port = _free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        python = os.environ.get("COMFYUI_PYTHON", sys.executable)
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
             "--base-directory", base, "--database-url", "sqlite:///:memory:",
             "--disable-auto-launch"],
            cwd=COMFYUI_DIR, stdout=self.log, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.log_path = log_path

    def output(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()[-6000:]

    def wait_ready(self):
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("ComfyUI exited (%d) while starting:\n%s"
                            % (self.proc.returncode, self.output()))
            try:
                status, info = _request(self.url + "/object_info/SparseAttentionCheck")
                if status == 200:
                    return info
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                pass
            time.sleep(1)
        pytest.fail("ComfyUI did not answer within %ds:\n%s" % (START_TIMEOUT, self.output()))

    def run(self, prompt):
        status, answer = _request(self.url + "/prompt", {"prompt": prompt})
        assert status == 200, (status, answer)
        prompt_id = answer["prompt_id"]
        deadline = time.time() + RUN_TIMEOUT
        while time.time() < deadline:
            _, history = _request(self.url + "/history/" + prompt_id)
            if history and prompt_id in history and history[prompt_id]["status"].get(
                    "status_str"):
                return history[prompt_id]
            assert self.proc.poll() is None, "ComfyUI died:\n" + self.output()
            time.sleep(0.5)
        pytest.fail("prompt %s did not finish within %ds:\n%s"
                    % (prompt_id, RUN_TIMEOUT, self.output()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.log.close()


def _staged_link():
    return os.path.join(COMFYUI_DIR, "comfy", "sparse.py")


def _workflow(**inputs):
    with open(os.path.join(EXAMPLE, "workflow_api.json")) as f:
        prompt = json.load(f)
    prompt["1"]["inputs"].update(inputs)
    return prompt


def _report(entry):
    return entry["outputs"]["1"]["text"][0]


@needs_comfyui
def test_example_node_in_a_real_comfyui_server(tmp_path):
    link = _staged_link()
    had_link = os.path.lexists(link)
    base = tmp_path / "base"
    shutil.copytree(EXAMPLE, base / "custom_nodes" / "comfyui_sparse_node")
    server = Server(str(base), str(tmp_path / "comfyui.log"))
    try:
        info = server.wait_ready()
        assert info["SparseAttentionCheck"]["display_name"] == "Sparse attention check"
        assert os.path.lexists(link), "the node package did not stage comfy/sparse.py"

        ok = server.run(_workflow())
        assert ok["status"]["status_str"] == "success", ok["status"]
        report = _report(ok)
        assert report.startswith("backend=native "), report  # CPU: native is placed first
        assert " ok (" in report, report
        err = float(report.split("rel_err=")[1].split()[0])
        assert 0 <= err < 1e-5, report

        sdpa = server.run(_workflow(backend="sdpa", dtype="bfloat16", causal=False,
                                    kv_lengths="5, 30, 0, 9, 64"))
        assert _report(sdpa).startswith("backend=sdpa ") and " ok (" in _report(sdpa)

        bad = server.run(_workflow(heads=8, kv_heads=3))  # H % H_kv != 0
        assert bad["status"]["status_str"] == "error"
        errors = [m[1] for m in bad["status"]["messages"] if m[0] == "execution_error"]
        assert errors and errors[0]["exception_type"].endswith("ValueError"), bad["status"]
        assert "H_kv" in errors[0]["exception_message"] or "head" in \
            errors[0]["exception_message"], errors[0]["exception_message"]

        again = server.run(_workflow(seed=1))  # the server survived the bad prompt
        assert again["status"]["status_str"] == "success" and " ok (" in _report(again)
    finally:
        server.stop()
        if not had_link and os.path.islink(link):
            os.unlink(link)


# --- without a ComfyUI checkout: the same node package in a minimal comfy tree ---------

_FAKE_COMFY_RUN = r"""
import importlib.util, json, os, sys
root, example = sys.argv[1], sys.argv[2]
sys.path.insert(0, root)                      # a tree with comfy/ (namespace package)
spec = importlib.util.spec_from_file_location(
    "comfyui_sparse_node", os.path.join(example, "__init__.py"),
    submodule_search_locations=[example])
pkg = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = pkg
spec.loader.exec_module(pkg)                  # what ComfyUI does with custom_nodes/<name>
node = pkg.NODE_CLASS_MAPPINGS["SparseAttentionCheck"]()
inputs = json.load(open(os.path.join(example, "workflow_api.json")))["1"]["inputs"]
good = node.run(**dict(inputs, device="cpu"))["result"][0]
errors = []
for bad in (dict(kv_heads=3), dict(q_lengths="4, -1"), dict(kv_lengths="3")):
    try:
        node.run(**dict(inputs, device="cpu", **bad))
    except ValueError as e:
        errors.append(str(e))
print(json.dumps({"report": good, "errors": errors,
                  "link": os.path.islink(os.path.join(root, "comfy", "sparse.py"))}))
"""


def test_example_node_package_in_a_minimal_comfy_tree(tmp_path):
    """No ComfyUI needed: a `comfy` namespace package with model_management.py stands in."""
    (tmp_path / "comfy").mkdir()
    (tmp_path / "comfy" / "model_management.py").write_text("")
    proc = subprocess.run([sys.executable, "-c", _FAKE_COMFY_RUN, str(tmp_path), EXAMPLE],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["link"], "setup_link did not stage comfy/sparse.py"
    assert result["report"].startswith("backend=native ") and " ok (" in result["report"]
    assert len(result["errors"]) == 3, result["errors"]
    assert "H_kv" in result["errors"][0]
    assert "negative" in result["errors"][1] and "kv_lengths" in result["errors"][2]
