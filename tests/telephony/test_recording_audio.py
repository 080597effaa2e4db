"""Listening: the byte-range parser, the recording audio view (Range, permission, listens
logged once per listen) and the admin pages that play it."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.test import AsyncClient, Client

from telephony.models import Call, CallStatus, Recording, RecordingListen, RecordingStatus
from telephony.web.ranges import ByteRange, Unsatisfiable, parse_range

AUDIO = bytes(range(256)) * 40  # 10,240 bytes, each position recognisable


# -- the parser ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("bytes=0-", ByteRange(0, 999)),
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=500-599", ByteRange(500, 599)),
        ("bytes=900-5000", ByteRange(900, 999)),  # clamped to the end
        ("bytes=-100", ByteRange(900, 999)),  # the last 100 bytes
        ("bytes=-5000", ByteRange(0, 999)),  # a suffix longer than the file: all of it
        (" BYTES = 10-19 ", ByteRange(10, 19)),
        ("bytes=0-1,5-6", None),  # several ranges: ignored, the whole file
        ("bytes=20-10", None),  # not a range: ignored
        ("items=0-9", None),
        ("bytes=abc", None),
        ("bytes=-", None),
        ("bytes=" + "9" * 60 + "-", None),  # absurd: ignored, not computed
    ],
)
def test_parse_range(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=1000-", 1000), ("bytes=-0", 1000), ("bytes=-1", 0)]
)
def test_parse_range__past_the_end_is_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)


def test_byte_range__content_range_and_length() -> None:
    assert ByteRange(10, 19).length == 10
    assert ByteRange(10, 19).content_range(100) == "bytes 10-19/100"


# -- the view ------------------------------------------------------------------------------


@pytest.fixture
def recordings_dir(settings: Any, tmp_path: Any) -> Any:
    settings.STORAGES = {
        **settings.STORAGES,
        "recordings": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "recordings")},
        },
    }
    return tmp_path / "recordings"


@pytest.fixture
def recording(db: Any, recordings_dir: Any) -> Recording:
    owner = get_user_model().objects.create_user("agent")
    call = Call.objects.create(
        user=owner, to_number="+12025550143", status=CallStatus.COMPLETED,
        recording_error="",
    )  # fmt: skip
    name = storages["recordings"].save("2026/11/rec.mp3", ContentFile(AUDIO))
    return Recording.objects.create(
        call=call, telnyx_recording_id="rec-1", format="mp3", channels="dual",
        status=RecordingStatus.STORED, storage_name=name, size_bytes=len(AUDIO),
        sha256=hashlib.sha256(AUDIO).hexdigest(), duration_seconds=12.5,
    )  # fmt: skip


def listener(name: str = "listener", *, perm: bool = True, staff: bool = False) -> Any:
    user = get_user_model().objects.create_user(name, is_staff=staff)
    if perm:
        user.user_permissions.add(Permission.objects.get(codename="listen_recording"))
    return user


def url(recording: Recording) -> str:
    return f"/api/webrtc/recordings/{recording.id}/audio"


async def fetch(client: AsyncClient, path: str, range_: str | None = None) -> tuple[Any, bytes]:
    headers = {"Range": range_} if range_ else {}
    response = await client.get(path, headers=headers)
    if response.streaming:
        chunks = response.streaming_content  # type: ignore[attr-defined]
        return response, b"".join([chunk async for chunk in chunks])
    return response, response.content


def client_for(user: Any) -> AsyncClient:
    client = AsyncClient()
    client.force_login(user)
    return client


@pytest.mark.django_db(transaction=True)
async def test_audio__whole_file_then_ranges_and_one_listen_per_play(recording: Recording) -> None:
    from asgiref.sync import sync_to_async

    user = await sync_to_async(listener)()
    client = await sync_to_async(client_for)(user)
    whole, body = await fetch(client, url(recording))
    assert whole.status_code == 200 and body == AUDIO
    assert whole["Content-Type"] == "audio/mpeg" and whole["Content-Length"] == str(len(AUDIO))
    assert whole["Accept-Ranges"] == "bytes" and whole["Cache-Control"] == "private, no-store"
    assert "Content-Disposition" not in whole and "Location" not in whole

    first, body = await fetch(client, url(recording), "bytes=0-")  # a player starts
    assert first.status_code == 206 and body == AUDIO
    assert first["Content-Range"] == f"bytes 0-{len(AUDIO) - 1}/{len(AUDIO)}"
    middle, body = await fetch(client, url(recording), "bytes=5000-5099")  # a seek
    assert middle.status_code == 206 and body == AUDIO[5000:5100]
    assert middle["Content-Range"] == f"bytes 5000-5099/{len(AUDIO)}"
    assert middle["Content-Length"] == "100"
    tail, body = await fetch(client, url(recording), "bytes=-16")
    assert tail.status_code == 206 and body == AUDIO[-16:]
    past, _ = await fetch(client, url(recording), f"bytes={len(AUDIO)}-")
    assert past.status_code == 416 and past["Content-Range"] == f"bytes */{len(AUDIO)}"
    assert past.json()["code"] == "range_not_satisfiable"

    listens = [row async for row in RecordingListen.objects.filter(recording=recording)]
    assert len(listens) == 2  # the plain GET and the play from byte 0; the seeks are not
    assert {row.user_id for row in listens} == {user.pk}
    assert sorted(row.byte_range for row in listens) == ["", "bytes=0-"]


@pytest.mark.django_db(transaction=True)
async def test_audio__only_for_the_listen_permission(recording: Recording) -> None:
    from asgiref.sync import sync_to_async

    anonymous, _ = await fetch(AsyncClient(), url(recording))
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"
    staff = await sync_to_async(listener)("staff", perm=False, staff=True)
    denied, body = await fetch(await sync_to_async(client_for)(staff), url(recording))
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
    assert AUDIO[:16] not in body
    boss = await get_user_model().objects.acreate(username="boss", is_superuser=True)
    allowed, _ = await fetch(await sync_to_async(client_for)(boss), url(recording))
    assert allowed.status_code == 200
    assert await RecordingListen.objects.filter(user=staff).acount() == 0


@pytest.mark.django_db(transaction=True)
async def test_audio__only_stored_recordings_with_a_file(recording: Recording) -> None:
    from asgiref.sync import sync_to_async

    client = await sync_to_async(client_for)(await sync_to_async(listener)())
    missing, _ = await fetch(
        client, "/api/webrtc/recordings/7b0e2a4e-0000-4000-8000-000000000000/audio"
    )
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    await Recording.objects.filter(pk=recording.pk).aupdate(status=RecordingStatus.PENDING)
    pending, _ = await fetch(client, url(recording))
    assert pending.status_code == 404
    await Recording.objects.filter(pk=recording.pk).aupdate(status=RecordingStatus.STORED)
    await sync_to_async(storages["recordings"].delete)(recording.storage_name)
    gone, _ = await fetch(client, url(recording))
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"
    assert await RecordingListen.objects.acount() == 0


# -- the admin -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_call_page__plays_the_recording_and_lists_listens(recording: Recording) -> None:
    boss = get_user_model().objects.create_superuser("boss", password="pw")
    assert recording.call is not None
    Call.objects.filter(pk=recording.call.pk).update(recording_error="Internal server error")
    RecordingListen.objects.create(recording=recording, user=boss, byte_range="bytes=0-")
    client = Client()
    client.force_login(boss)
    page = client.get(f"/admin/telephony/call/{recording.call.pk}/change/").content.decode()
    assert f'<audio controls preload="none" src="{url(recording)}"' in page
    assert recording.sha256 in page and "12.5 s" in page and "mp3 dual" in page
    assert "10.0\xa0KB" in page and "Internal server error" in page
    assert "tel-listens" in page and ">boss<" in page
    assert Recording.objects.get().storage_name not in page  # no file name anywhere
    listing = client.get("/admin/telephony/recording/?status__exact=stored")
    assert listing.status_code == 200 and listing.context["cl"].result_count == 1
    failed = client.get("/admin/telephony/recording/?status__exact=failed")
    assert failed.context["cl"].result_count == 0
    detail = client.get(f"/admin/telephony/recording/{recording.pk}/change/").content.decode()
    assert f'src="{url(recording)}"' in detail and "bytes=0-" in detail


@pytest.mark.django_db
def test_admin_call_page__no_player_without_the_listen_permission(recording: Recording) -> None:
    staff = listener("staff", perm=False, staff=True)
    for codename in ("view_call", "view_recording"):  # may see recordings, not hear them
        staff.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(staff)
    assert recording.call is not None
    page = client.get(f"/admin/telephony/call/{recording.call.pk}/change/")
    assert page.status_code == 200
    assert "<audio" not in page.content.decode()
    assert "Needs the permission to listen" in page.content.decode()
