"""Local processes: replicas are child processes of the lab, pull agents are threads beside them."""

from __future__ import annotations

from mlopslab.envs.base import Environment
from mlopslab.platforms.base import Platform


class LocalPlatform(Platform):
    kind = "local"

    def make_environment(self) -> Environment:
        from mlopslab.envs.local import LocalEnvironment

        self.env = LocalEnvironment(self.context.serving_dir, self.context.emit, log_dir=self.context.run_dir / "logs")
        return self.env
