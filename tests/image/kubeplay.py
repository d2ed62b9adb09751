"""Kubernetes manifests run for real with ``podman kube play`` (issue 23), and what that takes.

No cluster is available to CI, but Debian's podman 4.3 (with catatonit) runs a Pod's initContainers
before its containers, with emptyDir, PersistentVolumeClaims and Secrets. What it does not do, and
what this module supplies (docs/kubernetes.md lists the same):

- **Limits.** The sandbox refuses podman's default rlimits: a private containers.conf, handed over
  through CONTAINERS_CONF, sets ``default_ulimits`` (nofile from ``ulimit -Hn``, nproc 4096).
- **Images.** Images built with Docker are moved into podman's store (``docker save | podman load``)
  and the rendered manifests name them with ``imagePullPolicy: Never``.
- **Restart policy.** podman 4.3 restarts an init container that exited 0 when the pod's policy is
  Always (every Deployment's), so the pod never gets past Init. A run that should succeed is played
  with ``restartPolicy: OnFailure``, one that should fail with ``Never``.
- **Jobs.** kube play ignores a Job: its pod template is played as a Pod.
- **Secrets.** podman 4.3 mounts a Secret's ``data`` without base64-decoding it and drops its
  ``stringData``, and reads it as JSON for ``env.valueFrom.secretKeyRef``: the Secret is made with
  ``podman secret create``, its ``data`` in plain text, and the app's URL, which only the stand-in
  app reads, is given as a plain value. migrate-init's mounted Secret file is played as is.
- **Termination messages.** The kubelet mounts a file of its own at ``terminationMessagePath``;
  podman mounts nothing there, so the played manifest mounts a host file there (hostPath), which
  the test reads as ``kubectl describe`` would show it.
- **One replica.** kube play publishes every ``containerPort`` on the host, so a Deployment's second
  pod cannot bind it: Deployments are played with one replica (``NAME-pod-0``). Many migrators at
  once are tested by tests/image/test_image.py. Clean-up removes the pod by name too, in case
  ``kube down`` stopped early.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support import REPO
from tests.support.process import Result

KUBERNETES_DIR = REPO / "deploy" / "kubernetes"
#: How long one ``podman`` call may take; ``kube play`` waits for the init containers.
PODMAN_TIMEOUT = 240


@dataclass(frozen=True)
class Podman:
    env: dict[str, str]  # ours, plus CONTAINERS_CONF

    def __call__(self, *args: str, timeout: float = PODMAN_TIMEOUT, stdin: bytes | None = None) -> Result:
        try:
            proc = subprocess.run(
                ["podman", *args],
                env=self.env,
                input=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"podman {' '.join(args)} did not finish within {timeout}s:\n{exc.output!r}") from None
        out = proc.stdout.decode(errors="replace")
        # no systemd in a container: healthcheck timers cannot be made (probes do not run, see docs)
        out = "\n".join(line for line in out.splitlines() if "/run/systemd/private" not in line)
        return Result(proc.returncode, out)

    def state(self, container: str) -> dict:
        found = self("inspect", "--type", "container", "--format", "{{json .State}}", container)
        assert found.code == 0, found.out
        return json.loads(found.out)

    def exists(self, container: str) -> bool:
        return self("container", "exists", container).code == 0

    def logs(self, container: str) -> str:
        return self("logs", container).out

    def load(self, *images: str) -> dict[str, str]:
        """Move Docker images into podman's store; each one's name there."""
        save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
        assert save.stdout is not None
        loaded = subprocess.run(["podman", "load"], env=self.env, stdin=save.stdout, capture_output=True, timeout=600)
        save.stdout.close()
        assert save.wait(timeout=60) == 0 and loaded.returncode == 0, loaded.stderr.decode(errors="replace")
        # "Loaded image: NAME" or "Loaded image(s): NAME,NAME": podman puts a name with no
        # registry under localhost/ (or docker.io/library/ for what Docker pulled)
        out = loaded.stdout.decode(errors="replace")
        given = [
            name.strip()
            for line in out.splitlines()
            if line.startswith("Loaded image")
            for name in line.split(":", 1)[1].split(",")
        ]
        names = {}
        for image in images:
            found = [name for name in given if name == image or name.endswith("/" + image)]
            assert found, f"podman load gave {given}, not {image}"
            names[image] = found[0]
        return names


@pytest.fixture(scope="module")
def podman(tmp_path_factory) -> Podman:
    if shutil.which("podman") is None:
        pytest.fail(
            "podman is required and these tests are never skipped: run 'bash tests/run.sh' (it installs "
            "Debian's podman and catatonit), or apt-get install podman catatonit."
        )
    folder = tmp_path_factory.mktemp("podman")
    hard = subprocess.run(["bash", "-c", "ulimit -Hn"], capture_output=True, text=True, check=True).stdout.strip()
    conf = folder / "containers.conf"
    conf.write_text(f'[containers]\ndefault_ulimits = ["nofile={hard}:{hard}", "nproc=4096:4096"]\n')
    found = Podman({**os.environ, "CONTAINERS_CONF": str(conf)})
    version = found("version", "--format", "{{.Client.Version}}", timeout=60)
    assert version.code == 0, version.out
    return found


# --- the manifests, rendered and adapted ---------------------------------------------------


def render(folder: Path) -> list[dict]:
    """``kubectl kustomize FOLDER``: what ``kubectl apply -k`` would send."""
    result = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {folder} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec["containers"]


def with_images(docs: list[dict], images: dict[str, str]) -> list[dict]:
    """The rendered documents with each image repository swapped for a local one, never pulled."""
    docs = copy.deepcopy(docs)
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            for container in containers(pod_spec(doc)):
                repository = container["image"].rsplit(":", 1)[0].rsplit("/", 1)[-1]
                container["image"] = images[repository]
                container["imagePullPolicy"] = "Never"
    return docs


def job_as_pod(job: dict) -> dict:
    """kube play ignores a Job: its pod template, played as a Pod of the Job's name."""
    template = job["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": job["metadata"]["name"], "labels": template["metadata"]["labels"]},
        "spec": copy.deepcopy(template["spec"]),
    }


def app_url_as_value(doc: dict, url: str) -> None:
    """The app's DATABASE_URL from secretKeyRef, given as a value (kube play reads that as JSON)."""
    for container in pod_spec(doc)["containers"]:
        for variable in container.get("env", []):
            if "secretKeyRef" in variable.get("valueFrom", {}):
                variable.pop("valueFrom")
                variable["value"] = url


def termination_log(spec: dict, container_name: str, host_file: Path) -> None:
    """Mount ``host_file`` at the container's terminationMessagePath, as the kubelet does."""
    host_file.write_text("")
    host_file.chmod(0o666)
    (container,) = [c for c in containers(spec) if c["name"] == container_name]
    container.setdefault("volumeMounts", []).append(
        {"name": "termination-log", "mountPath": container["terminationMessagePath"]}
    )
    spec["volumes"].append({"name": "termination-log", "hostPath": {"path": str(host_file), "type": "File"}})


def create_secret(podman: Podman, folder: Path, name: str, key: str, value: str) -> None:
    """The Secret the user creates (``kubectl create secret generic NAME --from-file=KEY=...``), made
    the way podman 4.3 reads it back for a volume: ``podman secret create`` with ``data`` in plain
    text (it mounts ``data`` without base64-decoding it, and a Secret in the played YAML has only
    base64 ``data`` by then). ``Play.down`` removes it."""
    path = folder / f"secret-{name}.json"
    path.write_text(json.dumps({"data": {key: value}}))  # JSON is YAML
    created = podman("secret", "create", name, str(path))
    path.unlink()
    assert created.code == 0, created.out


@dataclass
class Play:
    """One ``podman kube play`` of a YAML file, and its clean-up."""

    podman: Podman
    path: Path
    docs: list[dict]
    secrets: tuple[str, ...] = ()  # made with create_secret

    def pods(self) -> list[str]:
        names = []
        for doc in self.docs:
            if doc["kind"] == "Deployment":
                names.append(f"{doc['metadata']['name']}-pod-0")
            elif doc["kind"] == "Pod":
                names.append(doc["metadata"]["name"])
        return names

    def down(self) -> None:
        self.podman("kube", "down", str(self.path))
        for pod in self.pods():  # see the module's docstring: one replica
            self.podman("pod", "rm", "--force", "--ignore", pod)
        # kube play keeps an emptyDir as a volume of its name: one a stopped play left must go
        for doc in self.docs:
            spec = doc.get("spec", {})
            for volume in (spec if doc["kind"] == "Pod" else spec.get("template", {}).get("spec", {})).get(
                "volumes", []
            ):
                if "emptyDir" in volume:
                    self.podman("volume", "rm", "--force", volume["name"])
        for name in self.secrets:  # kube play keeps a Secret's files in a volume of its name, and reuses it
            self.podman("volume", "rm", "--force", name)
            self.podman("secret", "rm", name)


def write_play(
    podman: Podman, path: Path, docs: list[dict], restart_policy: str | None = None, secrets: tuple[str, ...] = ()
) -> Play:
    docs = copy.deepcopy(docs)
    for doc in docs:
        if restart_policy and doc["kind"] in ("Deployment", "Pod"):
            (doc["spec"] if doc["kind"] == "Pod" else pod_spec(doc))["restartPolicy"] = restart_policy
        if doc["kind"] == "Deployment":
            doc["spec"]["replicas"] = 1  # see the module's docstring: ports
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return Play(podman, path, docs, secrets)


def _anonymous_volumes(podman: Podman) -> set[str]:
    listed = podman("volume", "ls", "--quiet").out.split()
    return {name for name in listed if len(name) == 64 and all(c in "0123456789abcdef" for c in name)}


@contextmanager
def played(play: Play, volumes: tuple[str, ...] = ()) -> Iterator[Play]:
    """Clean up after ``play``: ``kube down``, the pods by name, then ``volumes`` and the anonymous
    volumes its images' VOLUME lines made (kube down leaves those)."""
    before = _anonymous_volumes(play.podman)
    try:
        yield play
    finally:
        play.down()
        for volume in (*volumes, *(_anonymous_volumes(play.podman) - before)):
            play.podman("volume", "rm", "--force", volume)


def kube_play(play: Play) -> Result:
    return play.podman("kube", "play", str(play.path))


def wait_for(what: str, check, timeout: float, diagnose=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s\n{diagnose()}"
        time.sleep(0.5)
