"""The env repo over git's smart HTTP protocol, read-only, on 127.0.0.1: what Flux's GitRepository needs
(it takes http(s) and ssh URLs only, not a path).

A small threaded HTTP server hands each request to Debian's `git http-backend` as a CGI program, as a
git host's front end does. Only fetches are served: `git-receive-pack` (a push) is refused with 403,
and http-backend itself refuses it for an unauthenticated client anyway.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


def http_backend() -> str:
    """The path of `git http-backend` (git's exec path), or RuntimeError saying how to get it."""
    git = shutil.which("git")
    if git is None:
        raise RuntimeError("git is not installed (apt-get install git)")
    exec_path = subprocess.run([git, "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
    backend = Path(exec_path) / "git-http-backend"
    if not backend.exists():
        raise RuntimeError(f"{backend} is missing (apt-get install git)")
    return str(backend)


class GitServer:
    """Serves the repositories `names` under `root` at http://127.0.0.1:<port>/<name>; nothing else."""

    def __init__(self, root: Path, names: tuple[str, ...]) -> None:
        self.root = root
        backend = http_backend()
        server_root = root

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:   # quiet: the lab's log is its events
                pass

            def do_GET(self) -> None:
                self._cgi()

            def do_POST(self) -> None:
                self._cgi()

            def _cgi(self) -> None:
                url = urlsplit(self.path)
                if "git-receive-pack" in url.path or "git-receive-pack" in url.query:
                    self.send_error(403, "read-only: pushes are not served")
                    return
                if url.path.split("/")[1] not in names or "/.." in url.path:
                    self.send_error(404, "no such repository")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_PROJECT_ROOT": str(server_root),
                       "GIT_HTTP_EXPORT_ALL": "1", "REQUEST_METHOD": self.command, "PATH_INFO": url.path,
                       "QUERY_STRING": url.query, "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                       "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": self.client_address[0],
                       "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"}
                if self.headers.get("Git-Protocol"):
                    env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
                if self.headers.get("Content-Encoding"):
                    env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
                done = subprocess.run([backend], input=body, capture_output=True, env=env, timeout=60)
                head, _, payload = done.stdout.partition(b"\r\n\r\n")
                if not _:
                    head, _, payload = done.stdout.partition(b"\n\n")
                status, headers = 200, []
                for line in head.decode("latin-1").splitlines():
                    key, _, value = line.partition(":")
                    if key.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif key:
                        headers.append((key, value.strip()))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="git-http", daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def start(self) -> GitServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
