"""``progs view``: a web viewer (viser) that shows LoD 1 as soon as it is decoded and swaps in each
finer LoD as it arrives, with the current LoD, bytes received and anchor count on screen and a slider
to go back to coarser LoDs.

The stream comes from an http(s) URL (:class:`~progs.stream.client.StreamClient`, Range requests) or a
local ``.progs`` file (decoded prefix by prefix), in a background thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from progs.errors import ProgsError, optional_import
from progs.model.cloud import model_to_cloud


@dataclass
class LodSplats:
    lod: int
    bytes: int  # stream bytes received when this LoD was complete
    anchors: int
    centers: np.ndarray  # [N, 3] float32
    covariances: np.ndarray  # [N, 3, 3]
    rgbs: np.ndarray  # [N, 3] in [0, 1]
    opacities: np.ndarray  # [N, 1]

    def __len__(self) -> int:
        return int(self.centers.shape[0])


def _cloud_arrays(model, lod: int) -> tuple[torch.Tensor, ...]:
    """(means, quats, scales, opacities, colors) of the Gaussians of LoD ``lod`` (view-averaged colours:
    the viewer draws no spherical harmonics)."""
    c = model_to_cloud(model, lod, sh_degree=0)
    return c.means, c.quats, c.scales, c.opacities, c.colors


def lod_splats(model, lod: int, nbytes: int) -> LodSplats:
    from progs.render.projection import covariance_3d

    means, quats, scales, opac, colors = _cloud_arrays(model, lod)
    cov = covariance_3d(quats.float(), scales.float())
    return LodSplats(
        lod,
        int(nbytes),
        int((model.anchors.levels <= lod).sum()),
        means.float().numpy().astype(np.float32),
        cov.float().numpy().astype(np.float32),
        colors.float().clamp(0, 1).numpy().astype(np.float32),
        opac.float().reshape(-1, 1).clamp(0, 1).numpy().astype(np.float32),
    )


def iter_source(
    source: str, max_bytes: int | None = None, bandwidth: float | None = None
) -> tuple[int | None, Iterator]:
    """``(total LoDs or None, iterator of (lod, bytes, DecodeResult))`` for a URL or a local file."""
    from progs.stream.client import StreamClient, is_url, read_local_progressively

    if is_url(source):
        client = StreamClient(source, max_bytes=max_bytes, bandwidth=bandwidth)
        m = client.plan()
        return len(m["lods"]), client.iter_lods()
    path = Path(source)
    if not path.is_file():
        raise ProgsError(f"{source}: no such file (give a .progs file or an http(s) URL)")
    it = read_local_progressively(path)
    return None, it


class ProgressiveViewer:
    """A viser server whose scene shows the finest LoD received so far.

    ``start()`` opens the web server and begins streaming in a background thread; ``url`` is the page
    to open; ``wait(timeout)`` waits until the stream is done; ``stop()`` closes everything.
    """

    def __init__(
        self,
        source: str,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        max_bytes: int | None = None,
        bandwidth: float | None = None,
        verbose: bool = False,
    ) -> None:
        self.source = source
        self.host = host
        self.port = port
        self.max_bytes = max_bytes
        self.bandwidth = bandwidth
        self.verbose = verbose
        self.lods: dict[int, LodSplats] = {}
        self.total_lods: int | None = None
        self.shown: int | None = None
        self.history: list[tuple[float, int]] = []  # (monotonic time, LoD) each time the scene changed
        self.error: str | None = None
        self.done = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.RLock()
        self._setting_slider = False
        self._follow = True
        self._server = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------ setup
    def start(self) -> "ProgressiveViewer":
        viser = optional_import("viser", "viewer", "progs view")

        self._server = viser.ViserServer(host=self.host, port=self.port, label="progs", verbose=self.verbose)
        s = self._server
        s.gui.configure_theme(dark_mode=True, control_layout="floating", show_logo=False)
        self._status = s.gui.add_markdown("**progs** · connecting…")
        self._slider = s.gui.add_slider("LoD", min=1, max=2, step=1, initial_value=1, disabled=True)
        self._slider.on_update(lambda _ev: self._on_slider())
        self._thread = threading.Thread(target=self._stream, name="progs-view-stream", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        host = self._server.get_host()
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{host}:{self._server.get_port()}/"

    # -------------------------------------------------------------------------------- streaming
    def _stream(self) -> None:
        try:
            total, it = iter_source(self.source, self.max_bytes, self.bandwidth)
            self.total_lods = total
            for lod, nbytes, result in it:
                if self._stopping.is_set():
                    break
                if self.total_lods is None:
                    self.total_lods = result.lods_in_stream
                if result.model is None:
                    continue
                splats = lod_splats(result.model, lod, nbytes)
                with self._lock:
                    self.lods[lod] = splats
                    if lod == 1:
                        self._frame_camera(splats)
                    if self._follow:
                        self._show(lod)
                    self._update_slider()
                    self._update_status()
        except ProgsError as exc:
            self.error = str(exc)
            self._update_status()
        except Exception as exc:  # noqa: BLE001 - shown in the page; the viewer stays up
            self.error = f"{type(exc).__name__}: {exc}"
            self._update_status()
        finally:
            self.done.set()
            if not self._stopping.is_set():
                self._update_status()

    def _frame_camera(self, sp: LodSplats) -> None:
        if len(sp) == 0:
            return
        lo = np.percentile(sp.centers, 2, axis=0)
        hi = np.percentile(sp.centers, 98, axis=0)
        centre = (lo + hi) / 2
        radius = float(np.linalg.norm(hi - lo) / 2) or 1.0
        s = self._server
        s.scene.set_up_direction("+z")
        s.initial_camera.look_at = tuple(float(x) for x in centre)
        s.initial_camera.position = tuple(float(x) for x in centre + radius * np.array([1.6, -1.6, 1.1]))
        for client in s.get_clients().values():
            client.camera.look_at = centre
            client.camera.position = centre + radius * np.array([1.6, -1.6, 1.1])

    def _show(self, lod: int) -> None:
        sp = self.lods.get(lod)
        if sp is None:
            return
        self._server.scene.add_gaussian_splats("/splats", sp.centers, sp.covariances, sp.rgbs, sp.opacities)
        self.shown = lod
        self.history.append((time.monotonic(), lod))

    def select_lod(self, lod: int) -> None:
        """Show LoD ``lod`` (as the slider does); the latest LoD resumes following new arrivals."""
        self._slider.value = int(lod)

    def _update_slider(self) -> None:
        latest = max(self.lods) if self.lods else 1
        self._slider.max = max(2, latest)
        self._slider.disabled = latest < 2
        if self.shown is not None and self._slider.value != self.shown:
            self._setting_slider = True
            try:
                self._slider.value = self.shown
            finally:
                self._setting_slider = False

    def _on_slider(self) -> None:
        if self._setting_slider:
            return
        with self._lock:
            if not self.lods:
                return
            latest = max(self.lods)
            lod = int(min(max(1, self._slider.value), latest))
            self._follow = lod == latest
            if lod != self.shown:
                self._show(lod)
            self._update_status()

    def status_text(self) -> str:
        latest = max(self.lods) if self.lods else 0
        total = self.total_lods or "?"
        if not self.lods:
            line = f"**progs** · {'stream failed' if self.error else 'waiting for LoD 1'}"
        else:
            sp = self.lods[self.shown or latest]
            got = self.lods[latest]
            line = (
                f"**LoD {sp.lod} / {total}** · {got.bytes:,} bytes received · {sp.anchors:,} anchors · "
                f"{len(sp):,} Gaussians"
            )
            if latest != sp.lod:
                line += f" (received up to LoD {latest})"
            elif self.done.is_set():
                line += " · done"
        if self.error:
            line += f"\n\n`{self.error}`"
        return line

    def _update_status(self) -> None:
        if self._server is not None:
            self._status.content = self.status_text()

    # ------------------------------------------------------------------------------ lifecycle
    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def stop(self) -> None:
        """Stop streaming (waiting for a decode in progress, so that the interpreter never shuts
        down under a running C++ kernel), then the web server."""
        self._stopping.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=30)
        if self._server is not None:
            self._server.stop()
            self._server = None


def view(
    source: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    max_bytes: int | None = None,
    bandwidth: float | None = None,
    announce=print,
) -> None:
    """Run the viewer until Ctrl-C."""
    v = ProgressiveViewer(source, host, port, max_bytes=max_bytes, bandwidth=bandwidth).start()
    announce(f"viewer at {v.url} (Ctrl-C to stop)")
    try:
        announced_lod, announced_error = 0, False
        while True:
            done = v.done.wait(0.3)
            with v._lock:
                latest = max(v.lods) if v.lods else 0
                for lod in range(announced_lod + 1, latest + 1):
                    sp = v.lods.get(lod)
                    if sp is not None:
                        announce(
                            f"LoD {lod}: {sp.bytes:,} bytes received, {sp.anchors:,} anchors, {len(sp):,} Gaussians"
                        )
                announced_lod = latest
            if done and v.error and not announced_error:
                announce(f"stream stopped: {v.error}")
                announced_error = True
            if done:
                time.sleep(0.3)
    finally:
        v.stop()
