"""The report page as a person sees it: headless Chromium, with the network blocked.

A copy of the page gets one more script that runs after load and writes what it found into
the DOM, which Chromium dumps: every picture decoded and not blank, every audio element's
duration, the resources the page fetched, and where the playhead went after a cycle was
clicked. Every host name resolves to nothing and every request goes to a proxy on a closed
port, so a page that needed the network would show it here. Skipped where no Chromium is
installed (`apt-get install chromium`).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest

from respiro.commands.predict import main
from tests.test_report import RECORDINGS, make_checkpoint, make_recordings

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")

CHECK = """<script>
window.addEventListener('load', async function () {
  var out = {images: [], audio: [], resources: [], playhead: null};
  for (var img of document.images) {
    var c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
    var g = c.getContext('2d'); g.drawImage(img, 0, 0);
    var d = g.getImageData(0, 0, c.width, c.height).data, lo = 255, hi = 0;
    for (var i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i + 1]); hi = Math.max(hi, d[i + 1]); }
    out.images.push([img.naturalWidth, img.naturalHeight, hi - lo]);
  }
  for (var a of document.querySelectorAll('audio')) {
    if (!(a.duration > 0)) {
      await new Promise(function (r) { a.addEventListener('loadedmetadata', r, {once: true});
        a.addEventListener('error', r, {once: true}); setTimeout(r, 5000); });
    }
    out.audio.push(a.duration || 0);
  }
  var sec = document.querySelector('section.recording'), unit = sec.querySelectorAll('.unit')[2];
  var audio = sec.querySelector('audio');
  var seeked = new Promise(function (r) { audio.addEventListener('seeked', r, {once: true}); setTimeout(r, 5000); });
  unit.click(); await seeked; audio.pause();
  out.playhead = [sec.querySelector('.playhead').style.left, unit.style.left, audio.currentTime, +unit.dataset.start];
  out.resources = performance.getEntriesByType('resource').map(function (e) { return e.name; });
  var pre = document.createElement('pre'); pre.id = 'check'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script></body>"""


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"no Chromium found ({', '.join(BROWSERS)}); `apt-get install chromium` to run this test")


def offline(*args: str) -> list[str]:
    """Chromium headless with no way out: names resolve to nothing, requests go to a closed port."""
    return [
        browser(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--mute-audio",
        "--autoplay-policy=no-user-gesture-required",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=http://127.0.0.1:9",
        "--no-first-run",
        *args,
    ]


def test_chromium_draws_every_picture_plays_every_recording_and_fetches_nothing(tmp_path):
    binary = browser()
    model = make_checkpoint(tmp_path / "model.pt")
    recordings = make_recordings(tmp_path / "recordings")
    page = tmp_path / "report.html"
    main([str(recordings), "--model", str(model), "--out", str(tmp_path / "p.csv"), "--report", str(page)])
    checked = tmp_path / "checked.html"
    checked.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECK), encoding="utf-8")
    profile = tmp_path / "profile"
    result = subprocess.run(
        offline(f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--dump-dom", checked.as_uri()),
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="check">(.*?)</pre>', result.stdout, re.S)
    assert found, f"{binary} ran no check: {result.stderr[-2000:]}"
    out = json.loads(html.unescape(found.group(1)))
    assert len(out["images"]) >= len(RECORDINGS)  # a timeline each, and maps
    for width, height, spread in out["images"]:
        assert width > 300 and height > 100 and spread > 50  # decoded and not one flat colour
    assert len(out["audio"]) == len(RECORDINGS)
    assert all(duration > 0 for duration in out["audio"]), out["audio"]
    assert not [r for r in out["resources"] if not r.startswith("data:")], out["resources"]
    playhead, unit_left, current, start = out["playhead"]
    # The click sought to the unit's start and played (a few ms may pass before the pause),
    # and the playhead stands on the unit's left edge, a little to the right for those ms.
    assert 0 <= current - start < 0.1
    behind = float(playhead.rstrip("%")) - float(unit_left.rstrip("%"))
    assert -0.01 < behind < 100 * 0.1 / RECORDINGS["201_1b1_Al_sc_Meditron"][0]
