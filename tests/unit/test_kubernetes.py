"""The Kubernetes manifests in deploy/kubernetes: valid, packaged and hardened.

Every variant folder must work on its own with ``kubectl apply -k``.  Each one is
rendered by ``kubectl kustomize`` and the result is checked against the Kubernetes
schemas that ``kubernetes-validate`` ships (offline, strict: an unknown or
misspelt field fails), against the hardening policy, and by checkov, together with
the Dockerfile, so that a regression fails here rather than in a cluster.

Never skipped: tests/run.sh installs kubectl (Debian's kubernetes-client) and
checkov (build/checkov-venv, from tests/requirements-checkov.txt); without them
these tests fail and say so.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from migrate_init import __version__
from tests.support import REPO

KUBERNETES_DIR = REPO / "deploy" / "kubernetes"
VARIANTS = ("sqlite-initcontainer", "postgres-initcontainer", "postgres-job")
POSTGRES_VARIANTS = ("postgres-initcontainer", "postgres-job")

# The oldest Kubernetes we promise (podFailurePolicy is GA from 1.31) and the
# newest whose schemas the pinned kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.31", latest_version())

MIGRATE_IMAGE = "migrate-init"
#: The tag every manifest gives the image: the release, from the one place the version lives.
MIGRATE_IMAGE_REF = f"{MIGRATE_IMAGE}:{__version__}"
#: The Secret the PostgreSQL variants read the URL from; users create it (README.md).
DATABASE_SECRET = "your-app-database"
KUBERNETES_README = KUBERNETES_DIR / "README.md"
CHECKOV = REPO / "build" / "checkov-venv" / "bin" / "checkov"
# What a Job's deadline must leave on top of its timeouts for scheduling,
# image pull and interpreter start.
DEADLINE_MARGIN_SECONDS = 60


# --- reading the manifests the way kustomize does ----------------------------


def _load_all(path: Path) -> list[dict]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def _kustomization(variant: str) -> dict:
    (kustomization,) = _load_all(KUBERNETES_DIR / variant / "kustomization.yaml")
    return kustomization


def _resource_files(variant: str) -> list[Path]:
    return [KUBERNETES_DIR / variant / name for name in _kustomization(variant)["resources"]]


def _resources(variant: str) -> list[dict]:
    return [doc for path in _resource_files(variant) for doc in _load_all(path)]


def _manifest_files() -> list[Path]:
    return sorted(
        path
        for pattern in ("*.yaml", "*.yml")
        for path in KUBERNETES_DIR.rglob(pattern)
        if path.name not in ("kustomization.yaml", "kustomization.yml")
    )


def _pods(variants=VARIANTS):
    """(variant, workload, pod spec) for every Deployment and Job."""
    for variant in variants:
        for doc in _resources(variant):
            if doc["kind"] in ("Deployment", "Job"):
                yield variant, doc, doc["spec"]["template"]["spec"]


def _containers(variants=VARIANTS):
    """(variant, workload, pod spec, container) for every container and initContainer."""
    for variant, workload, pod in _pods(variants):
        for container in pod.get("initContainers", []) + pod["containers"]:
            yield variant, workload, pod, container


def _migrate_containers(variants=VARIANTS):
    """The containers that run the migrate-init image: every initContainer and every Job container."""
    for variant, workload, pod in _pods(variants):
        containers = pod["containers"] if workload["kind"] == "Job" else pod.get("initContainers", [])
        for container in containers:
            yield variant, workload, pod, container


def _pod_id(item) -> str:
    variant, workload = item[0], item[1]
    return f"{variant}/{workload['kind']}/{workload['metadata']['name']}"


def _container_id(item) -> str:
    return f"{_pod_id(item)}/{item[-1]['name']}"


def _env(container: dict) -> dict:
    return {var["name"]: var for var in container.get("env", [])}


def _seconds(container: dict, name: str) -> int:
    env = _env(container)
    assert name in env, f"{container['name']} must set {name} explicitly so the deadline can be checked"
    return int(env[name]["value"])


def _image_repository(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: name.rindex(":")]
    return name.rsplit("/", 1)[-1]


PODS = list(_pods())
CONTAINERS = list(_containers())
MIGRATE_CONTAINERS = list(_migrate_containers())


# --- schemas and packaging ----------------------------------------------------


def test_variant_folders_are_the_tested_ones():
    on_disk = {path.parent.name for path in KUBERNETES_DIR.glob("*/kustomization.yaml")}
    assert on_disk == set(VARIANTS), "add a new variant to VARIANTS so the policy tests cover it"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: str(p.relative_to(KUBERNETES_DIR)))
def test_every_manifest_validates_strictly_against_the_kubernetes_schema(path, version):
    documents = _load_all(path)
    assert documents, f"{path} holds no YAML document"
    for doc in documents:
        # SchemaNotFoundError (an unknown kind or apiVersion) fails the test too.
        kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_rejects_a_misspelt_field():
    # Guards the test above against passing vacuously.
    (deployment,) = [doc for doc in _resources("sqlite-initcontainer") if doc["kind"] == "Deployment"]
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["securityContext"]["runAsNonroot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, latest_version(), strict=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_kustomization_lists_only_files_that_exist(variant):
    kustomization = _kustomization(variant)
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["resources"], f"{variant}/kustomization.yaml lists no resources"
    for path in _resource_files(variant):
        assert path.is_file(), f"{variant}/kustomization.yaml lists {path.name}, which does not exist"
        assert path.parent == KUBERNETES_DIR / variant, f"{variant} must apply on its own, without {path}"


def test_every_manifest_is_listed_by_its_kustomization():
    listed = {path.resolve() for variant in VARIANTS for path in _resource_files(variant)}
    orphans = [str(p.relative_to(KUBERNETES_DIR)) for p in _manifest_files() if p.resolve() not in listed]
    assert not orphans, f"not applied by any kustomization.yaml: {orphans}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_kustomization_lets_users_retag_the_migrate_init_image(variant):
    images = {image["name"] for image in _kustomization(variant).get("images", [])}
    assert MIGRATE_IMAGE in images


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail(
            "kubectl is required and these tests are never skipped: run 'bash tests/run.sh tests/unit' "
            "(it installs Debian's kubernetes-client), or apt-get install kubernetes-client."
        )
    return kubectl


@functools.cache
def _rendered(variant: str) -> tuple[dict, ...]:
    """What ``kubectl kustomize`` makes of a variant: what ``kubectl apply -k`` sends."""
    result = subprocess.run(
        [_kubectl(), "kustomize", str(KUBERNETES_DIR / variant)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"kubectl kustomize {variant} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _rendered_containers(variant: str):
    for doc in _rendered(variant):
        if doc["kind"] in ("Deployment", "Job"):
            pod = doc["spec"]["template"]["spec"]
            for container in pod.get("initContainers", []) + pod["containers"]:
                yield doc, container


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_kubectl_kustomize_renders_every_variant_into_strictly_valid_manifests(variant, version):
    rendered = _rendered(variant)
    assert len(rendered) == len(_resources(variant))
    for doc in rendered:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_rendered_images_carry_the_release_tag_and_are_pulled_if_not_present(variant):
    containers = list(_rendered_containers(variant))
    assert containers
    for _, container in containers:
        image = container["image"]
        assert not image.endswith(":latest") and ":" in image.rsplit("/", 1)[-1], f"{image}: tag it"
        if _image_repository(image) == MIGRATE_IMAGE:
            assert image == MIGRATE_IMAGE_REF, f"{image}: the release is {__version__} (migrate_init/__init__.py)"
        assert container["imagePullPolicy"] == "IfNotPresent", container["name"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_kustomization_tags_migrate_init_with_the_package_version(variant):
    (entry,) = [image for image in _kustomization(variant)["images"] if image["name"] == MIGRATE_IMAGE]
    assert entry["newTag"] == __version__
    for _, _, _, container in _migrate_containers((variant,)):
        assert container["image"] == MIGRATE_IMAGE_REF


# --- hardening ----------------------------------------------------------------


@pytest.mark.parametrize("item", PODS, ids=_pod_id)
def test_pods_do_not_mount_a_service_account_token(item):
    _, _, pod = item
    assert pod.get("automountServiceAccountToken") is False


@pytest.mark.parametrize("item", PODS, ids=_pod_id)
def test_pods_run_as_the_image_non_root_user_under_runtime_default_seccomp(item):
    _, _, pod = item
    security = pod.get("securityContext", {})
    assert security.get("runAsNonRoot") is True
    assert security.get("runAsUser") == 10001
    assert security.get("seccompProfile") == {"type": "RuntimeDefault"}


@pytest.mark.parametrize("item", CONTAINERS, ids=_container_id)
def test_containers_have_a_read_only_root_and_no_privileges(item):
    security = item[-1].get("securityContext", {})
    assert security.get("readOnlyRootFilesystem") is True
    assert security.get("allowPrivilegeEscalation") is False
    assert security.get("capabilities", {}).get("drop") == ["ALL"]
    assert "add" not in security.get("capabilities", {})
    assert "privileged" not in security or security["privileged"] is False


@pytest.mark.parametrize("item", CONTAINERS, ids=_container_id)
def test_containers_declare_requests_and_limits(item):
    resources = item[-1].get("resources", {})
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"resources.{kind} needs cpu and memory"


@pytest.mark.parametrize("item", CONTAINERS, ids=_container_id)
def test_containers_report_failures_through_the_termination_message(item):
    container = item[-1]
    assert container.get("terminationMessagePath") == "/dev/termination-log"
    assert container.get("terminationMessagePolicy") == "FallbackToLogsOnError"


@pytest.mark.parametrize("item", CONTAINERS, ids=_container_id)
def test_containers_write_tmp_to_an_empty_dir(item):
    _, _, pod, container = item
    mounts = [m["name"] for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
    assert mounts, f"{container['name']} has a read-only root: it needs a volume at /tmp"
    (volume,) = [v for v in pod["volumes"] if v["name"] == mounts[0]]
    assert "emptyDir" in volume, f"/tmp must be an emptyDir, not {volume}"


# --- what each variant promises ------------------------------------------------


@pytest.mark.parametrize("item", MIGRATE_CONTAINERS, ids=_container_id)
def test_migrate_containers_run_the_migrate_init_image(item):
    assert _image_repository(item[-1]["image"]) == MIGRATE_IMAGE


def test_every_variant_has_a_migrate_container():
    assert {item[0] for item in MIGRATE_CONTAINERS} == set(VARIANTS)


@pytest.mark.parametrize("item", list(_migrate_containers(POSTGRES_VARIANTS)), ids=_container_id)
def test_postgres_migrate_containers_read_the_url_from_a_mounted_secret_file(item):
    _, _, pod, container = item
    env = _env(container)
    assert "DATABASE_URL" not in env, "the URL holds a password: use DATABASE_URL_FILE"
    url_file = env["DATABASE_URL_FILE"]["value"]
    secret_volumes = {v["name"] for v in pod["volumes"] if "secret" in v}
    mounts = [
        m
        for m in container["volumeMounts"]
        if m["name"] in secret_volumes and url_file.startswith(m["mountPath"].rstrip("/") + "/")
    ]
    assert mounts, f"DATABASE_URL_FILE={url_file} is not inside a mounted Secret volume"
    assert all(m.get("readOnly") is True for m in mounts)


@pytest.mark.parametrize("item", list(_containers(POSTGRES_VARIANTS)), ids=_container_id)
def test_postgres_containers_never_carry_a_plain_database_url(item):
    env = _env(item[-1])
    assert "value" not in env.get("DATABASE_URL", {}), "take DATABASE_URL from the Secret, not a literal value"


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_variant_ships_a_secret(variant):
    # A placeholder Secret would be applied as it is, and a later `apply -k` would
    # overwrite the real one.
    kinds = [doc["kind"] for doc in _rendered(variant)]
    assert "Secret" not in kinds
    assert not list((KUBERNETES_DIR / variant).glob("secret*.y*ml"))


def test_the_database_secret_is_referenced_by_name_and_documented():
    referenced = set()
    for variant in POSTGRES_VARIANTS:
        for doc in _rendered(variant):
            if doc["kind"] in ("Deployment", "Job"):
                pod = doc["spec"]["template"]["spec"]
                referenced |= {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
    assert referenced == {DATABASE_SECRET}
    readme = KUBERNETES_README.read_text()
    assert f"kubectl create secret generic {DATABASE_SECRET}" in readme
    assert "database-url" in readme


def test_the_server_variants_serve_mysql_and_mariadb_unchanged_and_say_how():
    # deploy/kubernetes/README.md promises that only the Secret's URL differs on MySQL and
    # MariaDB: nothing the pods are given may name an engine.
    for variant in POSTGRES_VARIANTS:
        for doc, container in _rendered_containers(variant):
            given = json.dumps([container.get(key) for key in ("env", "args", "command")]).lower()
            for engine in ("postgres", "mysql", "mariadb"):
                assert engine not in given, f"{variant}/{doc['metadata']['name']}/{container['name']} names {engine}"
    readme = KUBERNETES_README.read_text()
    assert "mysql://USER:PASSWORD@HOST:3306/DBNAME" in readme
    assert "## MySQL and MariaDB" in readme


def test_sqlite_runs_one_pod_on_a_read_write_once_volume():
    resources = _resources("sqlite-initcontainer")
    (deployment,) = [doc for doc in resources if doc["kind"] == "Deployment"]
    (claim,) = [doc for doc in resources if doc["kind"] == "PersistentVolumeClaim"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert claim["spec"]["accessModes"] in (["ReadWriteOnce"], ["ReadWriteOncePod"])


def test_sqlite_migrate_and_app_share_the_writable_data_volume():
    ((_, _, pod),) = list(_pods(("sqlite-initcontainer",)))
    (claim_volume,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert pod["securityContext"].get("fsGroup") is not None, "without fsGroup UID 10001 cannot write the volume"
    for container in pod["initContainers"] + pod["containers"]:
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == claim_volume["name"]]
        assert mount["mountPath"] == "/app/backend/data"
        assert not mount.get("readOnly")


def test_job_deadline_outlasts_the_sum_of_its_timeouts():
    jobs = [doc for doc in _resources("postgres-job") if doc["kind"] == "Job"]
    assert jobs
    for job in jobs:
        spec = job["spec"]
        assert spec["backoffLimit"] >= 1
        assert spec["ttlSecondsAfterFinished"] > 0
        for container in spec["template"]["spec"]["containers"]:
            migration_timeout = _seconds(container, "MIGRATION_TIMEOUT")
            assert migration_timeout > 0, "MIGRATION_TIMEOUT=0 (none) cannot fit in a deadline"
            budget = _seconds(container, "DB_WAIT_TIMEOUT") + _seconds(container, "LOCK_TIMEOUT") + migration_timeout
            assert spec["activeDeadlineSeconds"] >= budget + DEADLINE_MARGIN_SECONDS, (
                f"activeDeadlineSeconds {spec['activeDeadlineSeconds']} leaves less than "
                f"{DEADLINE_MARGIN_SECONDS} s over the timeouts' {budget} s"
            )


@pytest.mark.parametrize(
    "item",
    [item for item in MIGRATE_CONTAINERS if item[1]["kind"] == "Deployment" and not item[-1].get("args")],
    ids=_container_id,
)
def test_init_containers_that_migrate_fit_in_the_rollout_deadline(item):
    _, workload, _, container = item
    lock, migration = _seconds(container, "LOCK_TIMEOUT"), _seconds(container, "MIGRATION_TIMEOUT")
    assert lock > migration, "a replica waiting for the lock must outlast the one migrating"
    budget = _seconds(container, "DB_WAIT_TIMEOUT") + lock + migration
    assert workload["spec"]["progressDeadlineSeconds"] >= budget + DEADLINE_MARGIN_SECONDS


def test_job_pattern_app_only_waits_for_the_migration():
    deployments = [doc for doc in _resources("postgres-job") if doc["kind"] == "Deployment"]
    (job,) = [doc for doc in _resources("postgres-job") if doc["kind"] == "Job"]
    assert deployments
    for deployment in deployments:
        init_containers = deployment["spec"]["template"]["spec"]["initContainers"]
        assert init_containers
        for container in init_containers:
            assert _image_repository(container["image"]) == MIGRATE_IMAGE
            assert container.get("args") == ["wait"]
            assert "command" not in container, "keep the image's ENTRYPOINT"
        # Otherwise the Deployment's selector would also match the Job's pods.
        selector = deployment["spec"]["selector"]["matchLabels"]
        job_labels = job["spec"]["template"]["metadata"]["labels"]
        assert not selector.items() <= job_labels.items()


# --- release tooling: hooks, probes, disruption budgets ---------------------------


def test_job_runs_as_an_argo_cd_pre_sync_and_helm_pre_install_hook():
    (job,) = [doc for doc in _rendered("postgres-job") if doc["kind"] == "Job"]
    annotations = job["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "PreSync"
    assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation,HookSucceeded"
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"


def _app_containers():
    """(variant, deployment, container) for each Deployment's main containers (not init)."""
    for variant in VARIANTS:
        for doc in _resources(variant):
            if doc["kind"] == "Deployment":
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    yield variant, doc, container


@pytest.mark.parametrize("item", list(_app_containers()), ids=lambda item: f"{item[0]}/{item[2]['name']}")
def test_app_containers_have_startup_readiness_and_liveness_probes_on_a_declared_port(item):
    _, _, container = item
    ports = {port.get("name") for port in container.get("ports", [])} | {
        port["containerPort"] for port in container.get("ports", [])
    }
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(kind)
        assert probe, f"{container['name']} has no {kind}"
        assert probe["httpGet"]["port"] in ports, f"{kind} probes a port the container does not declare"
    # A database outage must make the pods unready, not restart them all.
    assert container["livenessProbe"]["httpGet"]["path"] != container["readinessProbe"]["httpGet"]["path"]


def _selects(selector: dict, labels: dict) -> bool:
    assert set(selector) == {"matchLabels"}, "these tests read matchLabels only"
    return selector["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("variant", VARIANTS)
def test_replicated_apps_have_a_disruption_budget_that_never_blocks_a_drain(variant):
    rendered = _rendered(variant)
    budgets = [doc for doc in rendered if doc["kind"] == "PodDisruptionBudget"]
    jobs = [doc for doc in rendered if doc["kind"] == "Job"]
    for deployment in (doc for doc in rendered if doc["kind"] == "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [pdb for pdb in budgets if _selects(pdb["spec"]["selector"], labels)]
        if deployment["spec"]["replicas"] == 1:
            # one that keeps the only pod up blocks every drain; one that lets it go does nothing
            assert not covering, f"{variant}: a single replica needs no PodDisruptionBudget"
            continue
        (pdb,) = covering
        spec = pdb["spec"]
        assert spec.get("maxUnavailable", 0) >= 1 or spec["minAvailable"] < deployment["spec"]["replicas"]
        # A pod held at Init (waiting for the lock or the Job) is not Ready: it must stay evictable.
        assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        for job in jobs:
            assert not _selects(spec["selector"], job["spec"]["template"]["metadata"]["labels"])


# --- checkov -------------------------------------------------------------------------


def _checkov_targets() -> list[Path]:
    return [REPO / "Dockerfile", *_manifest_files()]


@functools.cache
def _checkov() -> tuple[dict, ...]:
    if not CHECKOV.is_file():
        pytest.fail(
            f"checkov is required and this test is never skipped: {CHECKOV} is missing. Run "
            "'bash tests/run.sh tests/unit' (it installs tests/requirements-checkov.txt there)."
        )
    # Offline: no policy metadata from the vendor's API, no check for a newer checkov.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"}
    result = subprocess.run(
        [
            str(CHECKOV),
            "--skip-download",
            "--output",
            "json",
            "--framework",
            "kubernetes",
            "dockerfile",
            "--file",
            *map(str, _checkov_targets()),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    assert result.returncode in (0, 1), f"checkov failed to run ({result.returncode}):\n{result.stderr}"
    reports = json.loads(result.stdout)
    return tuple(reports if isinstance(reports, list) else [reports])


@pytest.mark.parametrize("check_type", ["kubernetes", "dockerfile"])
def test_checkov_finds_nothing_that_is_not_fixed_or_suppressed_with_a_reason(check_type):
    (report,) = [r for r in _checkov() if r["check_type"] == check_type]
    summary, results = report["summary"], report["results"]
    assert summary["parsing_errors"] == 0, results.get("parsing_errors")
    assert summary["passed"] > 0, "checkov checked nothing"
    failed = [
        f"{f['check_id']} {f['check_name']} ({f['resource']}, {f['file_path']})" for f in results["failed_checks"]
    ]
    assert not failed, "fix each finding, or suppress it inline with a reason:\n" + "\n".join(failed)
    for skipped in results["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment") or ""
        assert reason and reason != "No comment provided", f"{skipped['check_id']} is suppressed without a reason"


def test_checkov_reads_every_kubernetes_resource():
    # Guards the test above against passing vacuously: each resource was checked.
    (report,) = [r for r in _checkov() if r["check_type"] == "kubernetes"]
    checked = {
        result["resource"]
        for kind in ("passed_checks", "failed_checks", "skipped_checks")
        for result in report["results"][kind]
    }
    # checkov has checks for workloads; a PersistentVolumeClaim or a PodDisruptionBudget has none
    resources = {
        f"{doc['kind']}.default.{doc['metadata']['name']}"
        for path in _manifest_files()
        for doc in _load_all(path)
        if doc["kind"] in ("Deployment", "Job")
    }
    assert resources <= checked, resources - checked


# --- overlays: your own app with kubectl alone (issue 24) ------------------------------

#: Every overlay: the one to copy, and each example's (examples/*/kubernetes).
OVERLAYS = sorted(
    path.parent
    for path in [
        *(KUBERNETES_DIR / "overlays").glob("*/kustomization.yaml"),
        *(REPO / "examples").glob("*/kubernetes/kustomization.yaml"),
    ]
)
PLACEHOLDER_PROBES = {"/healthz", "/readyz"}


@functools.cache
def _rendered_folder(folder: Path) -> tuple[dict, ...]:
    result = subprocess.run([_kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {folder} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _overlay_base(overlay: Path) -> str:
    (base,) = _load_all(overlay / "kustomization.yaml")[0]["resources"]
    variant = (overlay / base).resolve()
    assert variant.parent == KUBERNETES_DIR and variant.name in VARIANTS, f"{overlay}: {base} is not a variant folder"
    return variant.name


def _workload_pods(docs) -> dict[str, dict]:
    return {
        f"{doc['kind']}/{doc['metadata']['name']}": doc["spec"]["template"]["spec"]
        for doc in docs
        if doc["kind"] in ("Deployment", "Job")
    }


def test_the_overlay_to_copy_and_every_example_overlay_are_tested():
    assert KUBERNETES_DIR / "overlays" / "your-app" in OVERLAYS, OVERLAYS
    # the README says how, with kubectl alone
    readme = KUBERNETES_README.read_text()
    assert "kustomize edit" not in readme and "kubectl kustomize deploy/kubernetes/overlays/your-app" in readme


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_overlay_renders_with_kubectl_alone_into_strictly_valid_manifests(overlay, version):
    rendered = _rendered_folder(overlay)
    assert len(rendered) == len(_resources(_overlay_base(overlay)))
    for doc in rendered:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: str(p.relative_to(REPO)))
def test_an_overlay_swaps_in_its_images_and_probes_and_keeps_the_hardening(overlay):
    kustomization = _load_all(overlay / "kustomization.yaml")[0]
    images = {image["name"]: image for image in kustomization["images"]}
    ours = images[MIGRATE_IMAGE]
    derived = f"{ours.get('newName', MIGRATE_IMAGE)}:{ours['newTag']}"
    base = _workload_pods(_rendered(_overlay_base(overlay)))
    pods = _workload_pods(_rendered_folder(overlay))
    assert pods.keys() == base.keys()
    for name, pod in pods.items():
        # what the variant promises (the hardening tests above) stays as it is
        assert pod["securityContext"] == base[name]["securityContext"], name
        assert pod["volumes"] == base[name]["volumes"], name
        for container, shipped in zip(
            pod.get("initContainers", []) + pod["containers"],
            base[name].get("initContainers", []) + base[name]["containers"],
            strict=True,
        ):
            assert container["securityContext"] == shipped["securityContext"], (name, container["name"])
            assert "replace-me" not in container["image"], (name, container["name"])
            if _image_repository(shipped["image"]) == MIGRATE_IMAGE:
                assert container["image"] == derived, (name, container["name"])
            if name.startswith("Deployment/") and container in pod["containers"]:
                ports = {port["name"] for port in container["ports"]}
                paths = {}
                for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                    probe = container[kind]
                    # replaced whole: one handler, on a declared port, not the placeholder's path
                    assert [key for key in probe if key in ("httpGet", "tcpSocket", "exec", "grpc")] == ["httpGet"]
                    assert probe["httpGet"]["port"] in ports
                    paths[kind] = probe["httpGet"]["path"]
                assert not set(paths.values()) & PLACEHOLDER_PROBES, paths
                assert paths["livenessProbe"] != paths["readinessProbe"], paths
