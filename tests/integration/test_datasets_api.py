"""Datasets end to end through the API and a real Celery worker: upload, process, version, chunked
uploads, access, deletion, and bad input that leaves nothing behind."""
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from PIL import Image

from tests.conftest import wait_until
from tests.unit.datasets import factories
from trainer_app.models import Dataset, DatasetStatus, Role, SiteSettings

pytestmark = pytest.mark.usefixtures("celery_worker_process")


@pytest.fixture
def member(transactional_db, user_factory, project_factory, api_client):
    user = user_factory("ana")
    project = project_factory("vision", (user, Role.ANALYST))
    api_client.force_authenticate(user)
    return {"user": user, "project": project, "client": api_client}


def wine_csv() -> bytes:
    import csv

    from sklearn.datasets import load_wine

    wine = load_wine()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*wine.feature_names, "target"])
    for row, label in zip(wine.data, wine.target):
        writer.writerow([*(f"{value:g}" for value in row), int(label)])
    return buffer.getvalue().encode()


def image_zip(classes=("cat", "dog"), per_class=12, size=(16, 16)) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(buffer, "w") as archive:
        for index, name in enumerate(classes):
            for sample in range(per_class):
                pixels = (rng.random((*size, 3)) * 60 + index * 150).astype(np.uint8)
                png = io.BytesIO()
                Image.fromarray(pixels).save(png, format="PNG")
                archive.writestr(f"{name}/{sample}.png", png.getvalue())
    return buffer.getvalue()


def upload(client, project, name, content: bytes, filename: str, **options):
    file = io.BytesIO(content)
    file.name = filename
    return client.post("/api/datasets/", {"project": project.id, "name": name, "file": file, **options},
                       format="multipart")


def wait_processed(client, dataset_id):
    def done():
        body = client.get(f"/api/datasets/{dataset_id}/").json()
        return body if body["status"] != "processing" else None

    return wait_until(done, timeout_s=120, interval_s=0.3, message=f"dataset {dataset_id} to be processed")


def test_a_csv_becomes_a_ready_dataset_with_statistics_and_preview(member):
    client, project = member["client"], member["project"]
    response = upload(client, project, "wine", wine_csv(), "wine.csv", target_column="target")
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "processing"
    body = wait_processed(client, response.json()["id"])
    assert body["status"] == "ready", body["error"]
    assert body["task"] == "classification" and body["num_classes"] == 3 and body["num_samples"] == 178
    assert body["input_shape"] == [13] and sum(body["splits"].values()) == 178
    assert set(body["splits"]) == {"train", "val", "test"} and len(body["sha256"]) == 64
    dataset = Dataset.objects.get(id=body["id"])
    assert dataset.preview["rows"] and "alcohol" in dataset.preview["columns"]
    assert any(feature["name"] == "alcohol" for feature in dataset.statistics["features"])


def test_the_same_name_again_makes_version_two_linked_to_version_one(member):
    client, project = member["client"], member["project"]
    first = wait_processed(client, upload(client, project, "wine", wine_csv(), "wine.csv").json()["id"])
    second = wait_processed(client, upload(client, project, "wine", wine_csv(), "wine-v2.csv").json()["id"])
    assert (first["version"], second["version"]) == (1, 2)
    assert second["previous"] == first["id"] and second["sha256"] == first["sha256"]


def test_an_image_zip_becomes_images_with_a_preview_per_class(member, client):
    api, project = member["client"], member["project"]
    body = wait_processed(api, upload(api, project, "pets", image_zip(), "pets.zip").json()["id"])
    assert body["status"] == "ready", body["error"]
    assert body["input_shape"] == [3, 16, 16] and body["num_classes"] == 2 and body["class_names"] == ["cat", "dog"]
    client.force_login(member["user"])
    page = client.get(f"/datasets/{body['id']}/").content.decode()
    assert 'data-testid="image-preview"' in page and 'data-testid="class-balance"' in page
    dataset = Dataset.objects.get(id=body["id"])
    channels = {feature["name"]: feature for feature in dataset.statistics["features"]}
    assert set(channels) == {"red", "green", "blue"}
    assert 0.0 <= channels["red"]["min"] < 0.1 and 0.75 < channels["red"]["max"] <= 210 / 255 + 1e-9  # real ranges
    thumbnail = dataset.preview["images"][0]["path"].removeprefix("preview/")
    image = client.get(f"/datasets/{body['id']}/preview/{thumbnail}")
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert client.get(f"/datasets/{body['id']}/preview/..%2Fmeta.json").status_code == 404


def test_an_executable_named_csv_fails_with_a_reason_and_leaves_nothing(member):
    client, project = member["client"], member["project"]
    ready = wait_processed(client, upload(client, project, "wine", wine_csv(), "wine.csv").json()["id"])
    elf = b"\x7fELF\x02\x01\x01" + bytes(200)
    body = wait_processed(client, upload(client, project, "sneaky", elf, "data.csv").json()["id"])
    assert body["status"] == "failed" and "csv" in body["error"].lower()
    dataset_dir = Path(settings.MEDIA_ROOT) / "datasets" / str(body["id"])
    assert not dataset_dir.exists()
    assert client.get(f"/api/datasets/{ready['id']}/").json()["status"] == "ready"  # others untouched


def test_an_archive_escaping_its_folder_is_refused(member):
    client, project = member["client"], member["project"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cat/ok.png", b"x")
        archive.writestr("../../evil.png", b"x")
    body = wait_processed(client, upload(client, project, "evil", buffer.getvalue(), "evil.zip").json()["id"])
    assert body["status"] == "failed" and "../" in body["error"]


def test_empty_and_oversized_files_are_refused_before_processing(member):
    client, project = member["client"], member["project"]
    empty = upload(client, project, "empty", b"", "empty.csv")
    assert empty.status_code == 400
    SiteSettings.objects.update_or_create(pk=1, defaults={"max_upload_bytes": 1000})
    big = upload(client, project, "big", b"a,b\n" + b"1,2\n" * 500, "big.csv")
    assert big.status_code in (400, 413) and "limit" in str(big.json())
    assert not Dataset.objects.filter(name__in=["empty", "big"]).exists()


def test_missing_name_project_or_file_says_which(member):
    client, project = member["client"], member["project"]
    response = client.post("/api/datasets/", {"project": project.id}, format="multipart")
    assert response.status_code == 400 and "name" in response.json()
    no_file = client.post("/api/datasets/", {"project": project.id, "name": "x"}, format="multipart")
    assert no_file.status_code == 400 and "file" in no_file.json()
    other = upload(client, type(project)(id=99999), "x", b"a,b\n1,2\n", "x.csv")
    assert other.status_code == 400 and "project" in other.json()


def test_chunked_upload_resumes_at_the_servers_offset(member):
    client, project = member["client"], member["project"]
    content = wine_csv()
    started = client.post("/api/uploads/", {"project": project.id, "filename": "wine.csv", "size": len(content)},
                          format="json")
    assert started.status_code == 201
    upload_id = started.json()["id"]
    half = len(content) // 2
    first = client.put(f"/api/uploads/{upload_id}/?offset=0", content[:half], content_type="application/octet-stream")
    assert first.json()["received"] == half
    # a retried chunk at a stale offset is refused with where the server stands
    stale = client.put(f"/api/uploads/{upload_id}/?offset=0", content[:half], content_type="application/octet-stream")
    assert stale.status_code == 409 and stale.json()["received"] == half
    early = client.post("/api/datasets/", {"project": project.id, "name": "wine", "upload": upload_id},
                        format="multipart")
    assert early.status_code == 400 and "send the rest" in str(early.json())
    assert client.get(f"/api/uploads/{upload_id}/").json()["received"] == half
    client.put(f"/api/uploads/{upload_id}/?offset={half}", content[half:], content_type="application/octet-stream")
    created = client.post("/api/datasets/", {"project": project.id, "name": "wine", "upload": upload_id,
                                             "target_column": "target"}, format="multipart")
    assert created.status_code == 201, created.json()
    assert wait_processed(client, created.json()["id"])["num_samples"] == 178


def test_other_projects_datasets_are_invisible(member, user_factory, project_factory, api_client):
    client, project = member["client"], member["project"]
    created = upload(client, project, "wine", wine_csv(), "wine.csv").json()
    outsider = user_factory("olga")
    project_factory("speech", (outsider, Role.LEAD))
    api_client.force_authenticate(outsider)
    assert api_client.get("/api/datasets/").json() == []
    assert api_client.get(f"/api/datasets/{created['id']}/").status_code == 404
    assert api_client.delete(f"/api/datasets/{created['id']}/").status_code == 404


def test_a_locked_dataset_cannot_be_deleted_and_an_unused_one_can(member):
    from trainer_app.services.datasets import dataset_lock

    client, project = member["client"], member["project"]
    kept = wait_processed(client, upload(client, project, "wine", wine_csv(), "wine.csv").json()["id"])
    dataset_lock(dataset=Dataset.objects.get(id=kept["id"]))
    refused = client.delete(f"/api/datasets/{kept['id']}/")
    assert refused.status_code == 409 and "cannot be deleted" in str(refused.json())
    gone = wait_processed(client, upload(client, project, "iris-ish", wine_csv(), "w.csv").json()["id"])
    assert client.delete(f"/api/datasets/{gone['id']}/").status_code == 204
    assert not (Path(settings.MEDIA_ROOT) / "datasets" / str(gone["id"])).exists()
    assert Dataset.objects.get(id=kept["id"]).status == DatasetStatus.READY


@pytest.mark.parametrize(("filename", "build", "expected"), [
    ("arrays.npz", lambda tmp: factories.npz_file(tmp / "arrays.npz", X=np.random.default_rng(0).random((60, 5)).astype(
        np.float32), y=np.arange(60) % 3), {"input_shape": [5], "num_classes": 3, "detected_format": "npz"}),
    ("mnist.zip", lambda tmp: factories.zip_of(tmp / "mnist.zip", factories.mnist_files()),
     {"input_shape": [1, 28, 28], "num_classes": 10, "detected_format": "mnist_idx"}),
    ("cifar-10-binary.tar.gz", lambda tmp: factories.tar_of(tmp / "cifar-10-binary.tar.gz", factories.cifar10_files()),
     {"input_shape": [3, 32, 32], "num_classes": 10, "detected_format": "cifar10_binary"}),
])
def test_npz_mnist_and_cifar_archives_round_trip_through_the_api(member, tmp_path, filename, build, expected):
    client, project = member["client"], member["project"]
    content = Path(build(tmp_path)).read_bytes()
    body = wait_processed(client, upload(client, project, filename.split(".")[0], content, filename).json()["id"])
    assert body["status"] == "ready", body["error"]
    assert {key: body[key] for key in expected} == expected
    assert body["splits"]["test"] > 0 and body["splits"]["val"] > 0


def test_admins_register_a_directory_on_shared_storage_and_others_cannot(member, tmp_path, user_factory):
    client, project = member["client"], member["project"]
    source = tmp_path / "shared" / "flowers"
    for index, name in enumerate(("rose", "tulip")):
        (source / name).mkdir(parents=True)
        for sample in range(6):
            (source / name / f"{sample}.png").write_bytes(factories.png_bytes(size=(8, 8), seed=index * 10 + sample))
    body = {"project": project.id, "name": "flowers", "path": str(source)}
    assert client.post("/api/datasets/register/", body, format="json").status_code == 403
    admin = user_factory("root", staff=True)
    project.memberships.create(user=admin, role=Role.ADMIN)
    client.force_authenticate(admin)
    relative = client.post("/api/datasets/register/", {**body, "path": "shared/flowers"}, format="json")
    assert relative.status_code == 400 and "absolute path" in relative.json()["path"][0]
    created = client.post("/api/datasets/register/", body, format="json")
    assert created.status_code == 201, created.json()
    ready = wait_processed(client, created.json()["id"])
    assert ready["status"] == "ready" and ready["class_names"] == ["rose", "tulip"] and ready["source"] == "directory"
    assert client.delete(f"/api/datasets/{ready['id']}/").status_code == 204
    assert (source / "rose" / "0.png").exists()  # deleting the dataset never touches the shared source


def test_admins_set_the_upload_limit_and_uploads_respect_it(member, user_factory):
    client, project = member["client"], member["project"]
    assert client.get("/api/settings/").json() == {"max_upload_bytes": 5 * 1024 ** 3}
    assert client.patch("/api/settings/", {"max_upload_bytes": 2 ** 20}, format="json").status_code == 403
    client.force_authenticate(user_factory("root", staff=True))
    too_small = client.patch("/api/settings/", {"max_upload_bytes": 10}, format="json")
    assert too_small.status_code == 400 and "at least 1 MB" in too_small.json()["max_upload_bytes"][0]
    assert client.patch("/api/settings/", {"max_upload_bytes": 2 ** 20}, format="json").json()["max_upload_bytes"] == 2 ** 20
    client.force_authenticate(member["user"])
    over = upload(client, project, "big", b"a,b\n" + b"1,2\n" * 300_000, "big.csv")
    assert over.status_code in (400, 413) and "limit" in str(over.json())
