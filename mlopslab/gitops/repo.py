"""The environment repo: a real git repository holding every lane's desired state as manifests.

Layout: `lanes/<lane>/{kustomization,namespace,deployment,service}.yaml`. The repo plays the git host
too: after each commit it delivers a signed push webhook to each registered hook (CI runners, agents
that asked for webhooks). Readers (agents, runners) keep clones of their own and fetch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlopslab.envs.base import DeploymentSpec
from mlopslab.gitops import manifests, webhook

BRANCH = "main"


class RepoError(RuntimeError):
    """Origin cannot be read (gone, unreachable, corrupt): the message is git's own, on one line."""


class EnvRepo:
    def __init__(self, path: Path) -> None:
        import git

        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git = git.Repo.init(path, initial_branch=BRANCH)
        with self.git.config_writer() as config:
            config.set_value("user", "name", "mlopslab")
            config.set_value("user", "email", "lab@mlopslab.invalid")
        self._lock = threading.Lock()
        self._hooks: list[queue.SimpleQueue] = []  # one per hook; secrets stay in memory, never in the repo
        self._head: str | None = self.git.head.commit.hexsha if self.git.head.is_valid() else None

    def add_hook(self, url: str, secret: str) -> None:
        """Each hook gets its pushes in commit order, from a delivery thread of its own (like a git host)."""
        deliveries: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()

        def deliver() -> None:
            while True:
                webhook.deliver(url, secret, deliveries.get())

        threading.Thread(target=deliver, name="webhook-delivery", daemon=True).start()
        self._hooks.append(deliveries)

    @property
    def head(self) -> str | None:
        """The last commit, without touching git: GitPython's Repo is not safe to share across threads."""
        return self._head

    def commit_lanes(self, specs: list[DeploymentSpec], message: str, *, notify: Callable[[str], None] | None = None) -> str:
        """Writes the lanes' manifests and commits them in one commit; then delivers the push webhooks."""
        with self._lock:
            for spec in specs:
                lane_dir = self.path / "lanes" / spec.lane
                lane_dir.mkdir(parents=True, exist_ok=True)
                for name, text in manifests.render_lane(spec).items():
                    (lane_dir / name).write_text(text)
            readme = self.path / "README.md"
            if not readme.exists():
                readme.write_text("# Environment repo (mlopslab)\n\nDesired state per lane: "
                                  "`kubectl kustomize lanes/<lane>` renders it.\n")
            self.git.index.add([str(p.relative_to(self.path)) for p in self.path.rglob("*")
                                if p.is_file() and ".git" not in p.parts])
            sha = self.git.index.commit(message).hexsha
            self._head = sha
            if notify is not None:
                notify(sha)
            payload = {"ref": f"refs/heads/{BRANCH}", "after": sha, "repository": str(self.path)}
            for deliveries in self._hooks:
                deliveries.put(payload)
        return sha


class Checkout:
    """A reader's own clone of the env repo (what a CI runner or an agent works from)."""

    def __init__(self, origin: Path, path: Path) -> None:
        import git

        self.path = path
        self.git = git.Repo.clone_from(str(origin), path) if not (path / ".git").exists() else git.Repo(path)

    def fetch(self) -> str:
        """Fetches origin and returns origin/main's commit; RepoError if origin cannot be read."""
        import git

        try:
            self.git.remotes.origin.fetch()
            return self.git.remotes.origin.refs[BRANCH].commit.hexsha
        except (git.GitCommandError, ValueError, IndexError, OSError) as exc:
            raise RepoError(f"git fetch {self.git.remotes.origin.url}: {_git_message(exc)}") from None

    def lane_files(self, sha: str, lane: str) -> dict[str, str]:
        """The lane directory's files at commit `sha`, read from git objects (no work-tree races).
        A lane missing at that commit is a KeyError; objects that cannot be read are a RepoError."""
        import git

        try:
            tree = self.git.commit(sha).tree / "lanes" / lane
            return {blob.name: blob.data_stream.read().decode() for blob in tree.blobs}
        except KeyError:
            raise
        except (git.GitCommandError, ValueError, OSError) as exc:
            raise RepoError(f"read {sha[:10]}: {_git_message(exc)}") from None

    def render(self, sha: str, lane: str) -> DeploymentSpec:
        return manifests.parse_lane(self.lane_files(sha, lane), revision=sha)


def _git_message(exc: BaseException) -> str:
    """git's own complaint (its first `fatal:`/`error:` lines), not GitPython's multi-line report."""
    text = str(getattr(exc, "stderr", "") or exc).strip().removeprefix("stderr:").strip().strip("'\"")
    lines = [line.strip().removeprefix("stderr:").strip().strip("'\"") for line in text.splitlines() if line.strip()]
    picked = [line for line in lines if line.startswith(("fatal:", "error:"))] or lines or [type(exc).__name__]
    return "; ".join(picked[:2])[:300]
