"""The pages of a run and of a sweep as headless Chromium shows them: no request but the page's
own file, every image decoded, the sections there, a screenshot that is not blank, no sideways
scrolling on a phone, trial links that lead to their section, and hostile text shown as text
with nothing run. Skipped where Chromium is missing, failed then under MLPCLI_REQUIRE_BROWSER=1."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import yaml
from browser import Browser, Rendered, chromium  # noqa: F401  (chromium: the fixture)
from conftest import mlp
from report_check import assert_self_contained, ids, images

pytestmark = pytest.mark.slow

HOSTILE_COLUMN = "<img src=x onerror=alert(1)>"
HOSTILE_LABEL = "<script>alert(1)</script>"
MOONS = {
    "name": "moons",
    "data": {"source": "moons", "n_samples": 300, "noise": 0.2},
    "model": {"hidden": [8, 8]},
    "optim": {"lr": 0.02},
    "train": {"epochs": 6, "diagnostics": {"every": 1}},
}


def write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    """A run with diagnostics, a sweep with a diverging point, and a run of hostile data, each
    with the page `mlp report` wrote."""
    root = tmp_path_factory.mktemp("pages")
    runs = root / "runs"
    config = write(root / "moons.yaml", MOONS)
    result = mlp("train", config, "--out", runs, "--name", "moons")
    assert result.exit_code == 0, result.output
    sweep = {**MOONS, "name": "grid", "optim": {"name": "sgd", "lr": 0.05}}
    sweep["train"] = {"epochs": 4}
    config = write(root / "grid.yaml", sweep)
    result = mlp(
        "sweep", config, "--hidden", "4,8", "--grid", "optim.lr=0.05,1e12", "--out", runs,
        "--name", "grid", "--workers", 1, "--quiet",
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # the diverging trials failed, as meant
    # Hostile names: a column whose name is markup, a class label that is a script.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    lines = [f"x1,{HOSTILE_COLUMN},label"]
    lines += [f"{a:.4f},{b:.4f},{HOSTILE_LABEL if a + b > 0 else 'b & c'}" for a, b in x]
    data = root / "hostile.csv"
    data.write_text("\n".join(lines) + "\n")
    hostile = {
        "name": "hostile",
        "data": {"source": "csv", "path": str(data), "target": "label"},
        "model": {"hidden": [4]},
        "train": {"epochs": 3},
    }
    result = mlp("train", write(root / "hostile.yaml", hostile), "--out", runs, "--name", "h")
    assert result.exit_code == 0, result.output
    found = {}
    for name in ("moons", "grid", "h"):
        result = mlp("report", runs / name)
        assert result.exit_code == 0, result.output
        found[name] = runs / name / "report.html"
    return found


def distinct_colours(png: bytes) -> int:
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    return len(np.unique(pixels, axis=0))


def check_page(rendered: Rendered, path: Path, sections: set[str]) -> str:
    """What every page must show in the browser, as the file says it will."""
    text = path.read_text()
    assert_self_contained(text)
    assert rendered.foreign_requests == []
    assert rendered.images and len(rendered.images) == len(images(text))
    assert all(i["complete"] and i["naturalWidth"] > 0 for i in rendered.images), rendered.images
    assert sections <= rendered.ids and rendered.ids == ids(text)
    assert rendered.scripts == 0
    assert distinct_colours(rendered.screenshot) > 2
    scroll_width, inner_width = rendered.phone_scroll
    assert scroll_width <= inner_width == 390
    return text


def test_run_page_in_chromium(chromium: Browser, pages):  # noqa: F811
    path = pages["moons"]
    rendered = chromium.render(path, shots="report-run")
    sections = {"overview", "command", "metrics", "curves", "layers", "inspect", "figures"}
    check_page(rendered, path, sections | {"data", "config"})
    # The command that trains the run again, and the data it read, as the browser shows them.
    command, data = (shown_text(chromium.driver, i) for i in ("command", "data"))
    assert command.startswith("Command\nmlp train ") and "moons" in command
    assert "source\nmoons" in data and "class labels\n0, 1" in data
    # The figures drawn for the page: the loss, the gradients and units of the diagnostics.
    alts = " ".join(i["alt"] for i in rendered.images)
    for figure in ("loss", "gradients", "units"):
        assert figure in alts


def test_sweep_page_in_chromium(chromium: Browser, pages):  # noqa: F811
    path = pages["grid"]
    rendered = chromium.render(path, shots="report-sweep")
    text = check_page(rendered, path, {"overview", "results", "figures", "trials", "config"})
    trials = sorted(i for i in ids(text) if i.startswith("t-"))
    assert len(trials) == 4
    assert "failed" in rendered.text and "loss became nan" in rendered.text
    # A trial's link, clicked from the top of the page, brings its section into view.
    driver = chromium.driver
    from selenium.webdriver.common.by import By

    last = trials[-1]
    driver.execute_script("window.scrollTo(0, 0)")
    assert not in_view(driver, last)
    driver.find_element(By.CSS_SELECTOR, f'#results a[href="#{last}"]').click()
    assert in_view(driver, last)
    assert driver.execute_script("return location.hash") == f"#{last}"


def shown_text(driver, element_id: str) -> str:
    """An element's text as the browser lays it out (innerText)."""
    return driver.execute_script(
        "return document.getElementById(arguments[0]).innerText", element_id
    )


def in_view(driver, element_id: str) -> bool:
    return driver.execute_script(
        "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
        "return r.top > -2 && r.top < window.innerHeight",  # -2: layout in fractions of a pixel
        element_id,
    )


def test_hostile_page_in_chromium(chromium: Browser, pages):  # noqa: F811
    path = pages["h"]
    rendered = chromium.render(path)
    check_page(rendered, path, {"overview", "metrics", "config"})
    assert rendered.scripts == 0
    assert HOSTILE_COLUMN in rendered.text and HOSTILE_LABEL in rendered.text
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        chromium.driver.switch_to.alert.text  # noqa: B018  (no handler ran: no alert open)


def test_the_checks_catch_a_page_that_fetches_or_shows_a_broken_image(
    chromium: Browser,  # noqa: F811
    tmp_path,
):
    """A negative control: under the pages' own CSP, an external image, stylesheet and CSS url()
    are each seen asking, and an image that does not decode has no width."""
    from mlpcli.pages.markup import CSP

    far = "http://192.0.2.1"  # TEST-NET-1: never a real host; the CSP blocks the request anyway
    path = tmp_path / "leaky.html"
    path.write_text(
        "<!doctype html><html><head>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<link rel="stylesheet" href="{far}/sheet.css">'
        f"<style>body{{background:url({far}/back.png)}}</style></head><body>"
        f'<img src="{far}/pixel.png" alt="far">'
        '<img src="data:image/png;base64,iVBORw0KGgo=" alt="broken">'
        "<p>leaky</p></body></html>"
    )
    rendered = chromium.render(path)
    for name in ("sheet.css", "back.png", "pixel.png"):
        assert f"{far}/{name}" in rendered.foreign_requests, rendered.requests
    broken = [i for i in rendered.images if i["alt"] == "broken"]
    assert broken and broken[0]["naturalWidth"] == 0
