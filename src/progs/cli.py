"""The ``progs`` command line. Every failure a user can cause ends in one line and exit status 2."""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
import time
from pathlib import Path

from progs import __version__
from progs.errors import ProgsError
from progs.presets import (
    DEMO_DEFAULTS,
    FIT_DEFAULTS,
    FIT_MIN_BASE_DEPTH,
    TEACHER_ANCHORS_PER_GAUSSIAN,
    TEACHER_ANCHORS_PER_GAUSSIAN_SH,
)


MAX_IMAGE_SIZE = 16384  # the largest image side a command renders (teacher, held-out views, render)


def _log(msg: str) -> None:
    print(msg, flush=True)


def _device(args: argparse.Namespace):
    """``--device`` as a torch.device this machine has (a one-line DeviceError otherwise)."""
    from progs.device import resolve_device

    return resolve_device(args.device)


# ------------------------------------------------------------------------------------ training
# TrainConfig's fields that command-line options set: field -> the argparse attribute (the option is
# that attribute spelled with dashes, e.g. init_points -> --init-points).
_OPTION_FIELDS = {
    "iterations": "iterations",
    "levels": "levels",
    "base_depth": "base_depth",
    "seed": "seed",
    "lambda_e": "lambda_e",
    "max_anchors": "max_anchors",
    "init_random_points": "init_points",
    "c2f_coarse_samples": "c2f_samples",
}


def _option(attr: str) -> str:
    return "--" + attr.replace("_", "-")


def _train_config(args: argparse.Namespace, defaults: dict | None = None):
    """The training configuration of the command's options; a value out of range is a one-line error
    naming the option, raised before any data is read."""
    from progs.train.config import ConfigError, TrainConfig

    options = dict(defaults or {})
    for field, attr in _OPTION_FIELDS.items():
        v = getattr(args, attr, None)
        if v is not None:
            options[field] = v
    if defaults is not None and "init_level" not in defaults:
        options["init_level"] = max(1, options.get("levels", TrainConfig.levels) - 3)
    for flag, name in (("no_adjust", "growth.enabled"), ("no_c2f", "c2f"), ("no_rate", "rate.enabled")):
        if getattr(args, flag):
            options[name] = False
    if getattr(args, "infonce", False):
        options["infonce"] = True
    if getattr(args, "checkpoint_every", 0) < 0:
        raise ProgsError(f"--checkpoint-every must be >= 0 iterations, got {args.checkpoint_every}")
    try:
        return TrainConfig().replace(**options)
    except ConfigError as exc:
        msg = str(exc)
        for field, attr in _OPTION_FIELDS.items():
            msg = re.sub(rf"(?<![\w.-]){field}\b", _option(attr), msg)
        raise ConfigError(msg) from None


def _check_range(args: argparse.Namespace, names: tuple[str, ...], low: int, high: int | None = None) -> None:
    """Each option of ``names`` that is given lies in ``low``..``high`` (``high`` None: no upper bound), or a
    one-line error names it."""
    for name in names:
        value = getattr(args, name)
        if value is not None and not (low <= value and (high is None or value <= high)):
            bound = f"at least {low}" if high is None else f"in {low}..{high}"
            raise ProgsError(f"{_option(name)} must be {bound}, got {value}")


def _check_run_folder(args: argparse.Namespace) -> None:
    """Refuse, before any work, an ``--out`` that is a file, a finished or interrupted run without
    ``--resume`` or ``--overwrite``, and ``--resume`` where there is nothing to continue."""
    from progs.train.run import CHECKPOINT

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ProgsError(f"--out {args.out}: exists and is not a folder (a run is a folder)")
    has_checkpoint = (out / CHECKPOINT).is_file()
    if args.resume and not has_checkpoint:
        raise ProgsError(f"--resume: {args.out} holds no {CHECKPOINT} to continue (leave out --resume to start)")
    if has_checkpoint and not args.resume and not args.overwrite:
        raise ProgsError(
            f"--out {args.out}: already holds a run ({CHECKPOINT}); --resume continues it, --overwrite starts afresh"
        )


def _print_lods(title: str, rows: list[dict]) -> None:
    from progs.eval.report import lod_table

    _log(title)
    _log(lod_table(rows))


def cmd_train(args: argparse.Namespace) -> int:
    from progs.io.dataset import DatasetSpec
    from progs.pipeline import train_run

    device = _device(args)
    cfg = _train_config(args)
    _check_run_folder(args)
    spec = DatasetSpec.from_argument(
        args.dataset,
        downscale=args.downscale,
        views=args.demo_views,
        size=args.demo_size,
        undistort=not args.no_undistort,
    )
    scene = spec.load()
    if not args.resume:
        from progs.train.sizing import has_points, pixels_per_view, scene_sizing

        cfg = scene_sizing(scene, cfg)
        if not has_points(scene):
            _log(
                f"{args.dataset}: no SfM points, {pixels_per_view(scene)} pixels per view -> "
                f"{cfg.init_random_points} random initial points"
                f"{' (--init-points)' if args.init_points else ''}, growth up to {cfg.growth.max_anchors} anchors"
                f"{' (--max-anchors)' if args.max_anchors else ''}"
            )
    out = train_run(
        scene,
        spec,
        Path(args.out),
        cfg,
        resume=args.resume,
        checkpoint_every=args.checkpoint_every,
        iterations=args.iterations,
        device=device,
    )
    _print_lods(
        f"trained {out.iterations} iterations in {out.seconds:.0f} s; test views per LoD (PSNR as decoded, "
        "PSNR float unquantized):",
        out.lods,
    )
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from progs.fitting import fit_splats

    device = _device(args)
    bg = _parse_rgb(args.background) if args.background else (0.0, 0.0, 0.0)
    _check_range(args, ("size",), 2, MAX_IMAGE_SIZE)
    _check_range(args, ("views",), 2)
    _check_range(args, ("eval_size",), 0, MAX_IMAGE_SIZE)
    cfg = _train_config(args, FIT_DEFAULTS)
    _check_run_folder(args)
    out = fit_splats(
        args.scene,
        args.out,
        lod=args.lod,
        size=args.size,
        views=args.views,
        up=args.up,
        background=bg,
        config=cfg,
        levels=args.levels,
        max_anchors=args.max_anchors,
        iterations=args.iterations,
        eval_size=args.eval_size,
        resume=args.resume,
        checkpoint_every=args.checkpoint_every,
        device=device,
        log=_log,
    )
    _print_lods(
        f"fitted {args.scene} in {out.seconds:.0f} s; held-out teacher views ({out.teacher_size}²) per LoD:", out.lods
    )
    if out.viewer_lods:
        _print_lods(
            f"held-out viewer views ({args.eval_size}², SH colours) per LoD, the model as decoded:", out.viewer_lods
        )
    return 0


def _parse_rgb(text: str) -> tuple[float, float, float]:
    """``r,g,b`` with each value in [0, 1] (a one-line error otherwise)."""
    try:
        rgb = tuple(float(c) for c in text.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
        raise ProgsError(f"--background {text!r}: expected three numbers in [0, 1] as r,g,b")
    return rgb  # type: ignore[return-value]


def _dataset_spec(args: argparse.Namespace):
    from progs.io.dataset import DatasetSpec

    return DatasetSpec.from_argument(args.dataset, downscale=args.downscale, views=args.demo_views, size=args.demo_size)


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from progs.eval.quality import evaluate_coded
    from progs.io.dataset import DatasetSpec
    from progs.train.run import load_run_model

    device = _device(args)
    target = Path(args.target)
    if target.is_dir():
        model, info = load_run_model(target)
        model = model.to(device)
        scene = (DatasetSpec.from_json(info["dataset"]) if not args.dataset else _dataset_spec(args)).load()
        rows = evaluate_coded(model, scene, background=scene.background)
        title = f"{target} (checkpoint; PSNR as decoded from its stream, PSNR float unquantized); test views per LoD:"
    else:
        from progs.pipeline import evaluate_stream

        if not args.dataset:
            raise ProgsError(
                f"{args.target}: give the DATASET to evaluate the stream on (e.g. `progs eval {args.target} demo`)"
            )
        scene = _dataset_spec(args).load()
        rows = evaluate_stream(_read_stream(args.target), scene, source=args.target, device=device)
        title = f"{target} (decoded stream); test views per LoD:"
    if args.json:
        print(json.dumps({"lods": rows}, indent=2))
    else:
        _print_lods(title, rows)
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    from progs.pipeline import encode_run

    out = encode_run(Path(args.run), Path(args.out), evaluate=not args.no_eval, progress=True)
    _print_lods(f"wrote {out.stream} and {out.manifest}; per LoD (quantized model, test views):", out.rows)
    return 0


def _distill_config(args: argparse.Namespace, size: int | None = None):
    """The distillation settings of ``--distill N`` and ``--distill-size PX`` (or ``size``)."""
    from progs.train.distill import DistillConfig

    iterations = DistillConfig.iterations if args.distill is None else args.distill
    px = size if size is not None else getattr(args, "distill_size", None)
    px = DistillConfig.size if px is None else px
    if iterations < 0:
        raise ProgsError(f"--distill must be >= 0 iterations, got {iterations}")
    if px < 8:
        raise ProgsError(f"--distill-size must be >= 8 pixels, got {px}")
    return DistillConfig(iterations=iterations, size=px)


def _export_method(args: argparse.Namespace, cameras: list | None, iterations: int) -> str:
    views = (
        f"the {len(cameras)} training cameras of {args.cameras_from}" if cameras else "virtual views around the scene"
    )
    if iterations == 0:
        return f"SH fitted from {views}, no distillation"
    return f"SH fitted, then distilled for {iterations} iterations from {views}"


def _add_distill_options(p: argparse.ArgumentParser, size: bool = True) -> None:
    # defaults None = DistillConfig's (not imported here: it would load torch for every command's parser)
    p.add_argument(
        "--distill",
        type=int,
        metavar="N",
        help="iterations optimising the exported Gaussians so that a plain 3DGS render matches progs' "
        "own from virtual views (default 500; 0: the closed-form SH fit only)",
    )
    if size:
        p.add_argument(
            "--distill-size", type=int, metavar="PX", help="image size of the distillation's virtual views (default 96)"
        )


def cmd_decode(args: argparse.Namespace) -> int:
    from progs.codec.stream import decode
    from progs.io.writers import cloud_format, write_cloud
    from progs.pipeline import export_cloud

    cloud_format(args.out, args.format)  # refuse an unknown format before decoding
    distill = _distill_config(args)
    scenes = {}
    for name in dict.fromkeys(n for n in (args.check, args.cameras_from) if n):
        args.dataset = name
        scenes[name] = _dataset_spec(args).load()  # before decoding: a bad dataset fails fast
    if args.lod is not None and args.lod < 1:
        raise ProgsError(f"--lod must be >= 1 (the number of LoDs to decode), got {args.lod}")
    res = decode(_read_stream(args.stream), max_lod=args.lod, source=args.stream)
    if args.lod is not None and args.lod > res.lods_in_stream:
        print(
            f"progs: note: {args.stream} has {res.lods_in_stream} LoDs; decoding all of them (--lod {args.lod})",
            file=sys.stderr,
        )
    if res.model is None:
        raise ProgsError(f"{args.stream}: no LoD could be decoded ({res.problem})")
    if res.problem:
        print(f"progs: warning: {res.problem}; using LoD {res.lods_decoded}", file=sys.stderr)
    cameras = [v.camera for v in scenes[args.cameras_from].train_views] if args.cameras_from else None
    t0 = time.perf_counter()
    cloud = export_cloud(res.model, res.lods_decoded, sh_degree=args.sh_degree, cameras=cameras, distill=distill)
    seconds = time.perf_counter() - t0
    fmt = write_cloud(args.out, cloud, args.format)
    _log(
        f"decoded LoD {res.lods_decoded}/{res.lods_in_stream} ({len(res.model.anchors)} anchors) -> "
        f"{len(cloud)} Gaussians (SH degree {args.sh_degree}) in {args.out} ({fmt}); "
        f"{_export_method(args, cameras, distill.iterations)}, {seconds:.1f} s"
    )
    if args.check:
        from progs.eval.fidelity import export_fidelity

        scene = scenes[args.check]
        bg = res.background if res.background is not None else scene.background
        views = scene.test_views or scene.train_views
        f = export_fidelity(res.model, res.lods_decoded, cloud, views, bg)
        _log(
            f"export fidelity on {len(views)} test views of {args.check} (PSNR vs ground truth): progs render "
            f"{f.psnr_progs:.2f} dB, exported Gaussians in a plain 3DGS renderer {f.psnr_export:.2f} dB "
            f"({f.delta:+.2f} dB; {f.psnr_between:.2f} dB between the two renders)"
        )
    return 0


# ----------------------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    import json

    import torch

    from progs.atomic import write_bytes_atomic
    from progs.io.writers import write_cloud
    from progs.eval.figures import contact_sheet, save_image
    from progs.eval.report import markdown_lod_table, rd_plot
    from progs.io.dataset import DatasetSpec
    from progs.io.demo_scene import demo_gaussians, load_demo_scene
    from progs.io.ply import GaussianCloud, write_ply
    from progs.pipeline import encode_run, evaluate_stream, export_cloud, train_run
    from progs.stream.manifest import read_manifest, write_manifest

    device = _device(args)
    distill = _distill_config(args, size=args.size)  # a bad option fails before training
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    scene = load_demo_scene(views=args.views, size=args.size, seed=args.seed)
    g = demo_gaussians(args.seed)
    write_ply(out / "demo_scene.ply", GaussianCloud.from_activated(g.means, g.quats, g.scales, g.opacities, g.colors))
    views = scene.views
    save_image(
        contact_sheet([v.image for v in views], [v.name.removeprefix("demo_") for v in views]),
        out / "contact_sheet.png",
    )
    _log(
        f"[1/4] demo scene: {len(g)} Gaussians, {len(scene.train_views)} train + {len(scene.test_views)} test views "
        f"at {args.size}x{args.size} ({time.perf_counter() - t0:.1f} s) -> {out / 'contact_sheet.png'}"
    )
    if args.render_only:
        return 0

    spec = DatasetSpec.create("demo", views=args.views, size=args.size, seed=args.seed)
    cfg = _train_config(args, DEMO_DEFAULTS)
    _log("[2/4] training ProGS (every LoD at once)")
    trained = train_run(scene, spec, out / "run", cfg, checkpoint_every=args.checkpoint_every, device=device)
    _print_lods(
        f"      {trained.iterations} iterations in {trained.seconds:.0f} s; checkpoint on test views (PSNR as decoded, PSNR float unquantized):",
        trained.lods,
    )

    _log("[3/4] encoding the progressive stream")
    enc = encode_run(out / "run", out / "scene.progs", evaluate=False, scene=scene)
    _log("[4/4] decoding every prefix (header + LoD 1..k) and measuring it")
    data = enc.stream.read_bytes()
    rows = evaluate_stream(data, scene, source=str(enc.stream), prefixes=True, device=device)
    _print_lods(f"      decoded from {enc.stream} ({len(data)} bytes, header {enc.result.header_bytes}):", rows)
    manifest = read_manifest(enc.manifest)  # the quality just measured goes into the manifest too
    for lod, row in zip(manifest["lods"], rows):
        lod["psnr"], lod["ssim"] = row["psnr"], row["ssim"]
    write_manifest(enc.manifest, manifest)
    wrote = []
    try:
        rd_plot(
            {"ProGS (progs)": [(r["cumulative_bytes"], r["psnr"], r["lod"]) for r in rows]},
            out / "rd.png",
            title="demo scene: quality per received bytes",
        )
        wrote.append(str(out / "rd.png"))
    except ProgsError as exc:  # the figure is the one part that needs an extra (matplotlib)
        _warn(f"no {out / 'rd.png'}: {exc}")
    from progs.codec.stream import decode

    dec = decode(data)
    write_cloud(out / "decoded.ply", export_cloud(dec.model, distill=distill))
    summary = {
        "train": trained.lods,
        "stream": rows,
        "train_seconds": trained.seconds,
        "total_bytes": len(data),
        "header_bytes": enc.result.header_bytes,
    }
    write_bytes_atomic(out / "results.json", json.dumps(summary, indent=2).encode())
    write_bytes_atomic(out / "results.md", (markdown_lod_table(rows) + "\n").encode())
    _log(f"wrote {', '.join([*wrote, str(out / 'decoded.ply')])} (LoD {dec.lods_decoded}), {out / 'results.json'}")
    _log(f"watch the stream load in a web browser: progs view {enc.stream}")
    return 0


# --------------------------------------------------------------------------------------- render
def cmd_render(args: argparse.Namespace) -> int:
    import torch

    from progs.eval.figures import save_image
    from progs.io.splats import read_splats
    from progs.io.teacher import look_at_cloud
    from progs.io.cloud_render import render_cloud

    _check_range(args, ("width", "height"), 1, MAX_IMAGE_SIZE)
    _check_image_out(args.out)
    cloud = read_splats(args.scene, lod=args.lod)
    if args.camera_from:
        from progs.io.dataset import DatasetSpec

        scene = DatasetSpec.from_argument(args.camera_from, downscale=args.downscale).load()
        views = scene.views
        if not 0 <= args.view < len(views):
            raise ProgsError(
                f"{args.camera_from}: --view {args.view} is out of range (the dataset has {len(views)} views)"
            )
        cam = views[args.view].camera
        if args.width or args.height:
            w = args.width or max(1, round(cam.width * args.height / cam.height))
            h = args.height or max(1, round(cam.height * args.width / cam.width))
            cam = cam.resized(w, h)
    else:
        cam = look_at_cloud(cloud.means, args.width or 512, args.height or 512, args.azimuth, args.elevation, args.up)
    bg = torch.tensor(_parse_rgb(args.background)) if args.background else None
    t0 = time.perf_counter()
    with torch.no_grad():
        image, alpha, _ = render_cloud(cloud, cam, bg)  # SH colours along each viewing ray
    dt = time.perf_counter() - t0
    try:
        save_image(image, args.out)
    except OSError as exc:
        raise ProgsError(f"{args.out}: cannot write the image ({exc.strerror or exc})") from None
    _log(
        f"rendered {len(cloud)} Gaussians at {cam.width}x{cam.height} in {dt:.2f} s "
        f"(coverage {float(alpha.mean()) * 100:.0f}%) -> {args.out}"
    )
    return 0


def _check_image_out(path: str) -> None:
    """Refuse an output image path progs cannot write as PNG or JPEG, before any rendering."""
    from progs.eval.figures import IMAGE_FORMATS

    out = Path(path)
    if out.suffix.lower() not in IMAGE_FORMATS:
        raise ProgsError(f"--out {path}: the image must be {', '.join(IMAGE_FORMATS)}")
    if out.is_dir():
        raise ProgsError(f"--out {path}: is a folder, not an image file")
    parent = out.parent
    if not parent.is_dir():
        raise ProgsError(f"--out {path}: the folder {parent} does not exist")


# ------------------------------------------------------------------------------------------- info
def _read_stream(path: str) -> bytes:
    p = Path(path)
    if p.is_dir():
        raise ProgsError(f"{path}: is a folder, not a .progs stream file")
    if not p.is_file():
        raise ProgsError(f"{path}: no such stream file")
    return p.read_bytes()


def cmd_info(args: argparse.Namespace) -> int:
    import json

    from progs.codec.container import FORMAT_VERSION
    from progs.codec.stream import decode

    data = _read_stream(args.stream)
    res = decode(data, source=args.stream, components=True)
    info = {
        "version": FORMAT_VERSION,
        "total_bytes": len(data),
        "header_bytes": res.header_bytes,
        "levels": res.lods_in_stream,
        "lods_decodable": res.lods_decoded,
        "lods": [
            {
                "lod": s.lod,
                "bytes": s.bytes,
                "anchors": s.anchors,
                "components": s.components,
                "structure_method": s.structure_method,
                **({"decode_s": round(s.seconds, 4)} if args.timings else {}),
            }
            for s in res.lods
        ],
        "problem": res.problem,
    }
    if res.model is not None:
        from progs.codec.levels import prior_comparison

        coded = {k: sum(s.components[k] for s in res.lods) for k in ("f", "s", "o")}
        info["priors"] = prior_comparison(res.model, coded, bool(res.config.get("skip_hidden")))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(
        f"{args.stream}: progs stream v{info['version']}, {len(data)} bytes, header {res.header_bytes} bytes, "
        f"{res.lods_decoded}/{res.lods_in_stream} LoDs decodable"
    )
    cum = res.header_bytes
    anchors = 0
    head = f"{'LoD':>3} {'bytes':>9} {'cum.bytes':>10} {'anchors':>8} {'cum.anch':>9} {'struct':>7} {'pred':>5} {'f':>8} {'s':>8} {'o':>8}  method"
    if args.timings:
        head += "  decode_s"
    print(head)
    for s in res.lods:
        cum += s.bytes
        anchors += s.anchors
        c = s.components
        line = (
            f"{s.lod:>3} {s.bytes:>9} {cum:>10} {s.anchors:>8} {anchors:>9} {c['structure']:>7} {c['prediction']:>5} {c['f']:>8} "
            f"{c['s']:>8} {c['o']:>8}  {s.structure_method}"
        )
        if args.timings:
            line += f"  {s.seconds:.3f}"
        print(line)
    print(
        "struct: bytes saying which octree cells hold anchors (method: roots = their positions, root occupancy = "
        "coded child\n  masks of the cells above them, occupancy = coded child masks, parent-index = each anchor's "
        "parent);\n  pred: the table predicting a level from its parents; f, s, o: the anchors' features, scalings, offsets"
    )
    names = {"f": "features", "s": "scalings", "o": "offsets"}
    for name, p in info.get("priors", {}).items():
        print(
            f"{names.get(name, name)}: {p['coded_bits_per_symbol']:.3f} bits per value as coded, "
            f"{p['constant_prior_bits_per_symbol']:.3f} with one fixed Gaussian per channel instead of the "
            f"context model ({p['symbols']} values)"
        )
    if res.problem:
        print(f"note: {res.problem}")
    return 0


# ------------------------------------------------------------------------------ serve, fetch, view
def cmd_serve(args: argparse.Namespace) -> int:
    from progs.stream.server import serve_forever

    serve_forever(args.dir, args.host, args.port, announce=_log)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from progs.atomic import write_bytes_atomic
    from progs.stream.client import StreamClient

    out = Path(args.out)
    if out.suffix.lower() not in (".ply", ".progs"):
        raise ProgsError(
            f"{args.out}: --out must end in .ply (decoded Gaussians) or .progs (the fetched stream prefix)"
        )
    if args.seconds is not None and args.bandwidth is None:
        raise ProgsError("--seconds needs --bandwidth (the link's bytes per second) to know what arrives in time")
    distill = _distill_config(args)
    client = StreamClient(
        args.url, max_bytes=args.max_bytes, bandwidth=args.bandwidth, seconds=args.seconds, max_lod=args.max_lod
    )
    t0 = time.perf_counter()
    m = client.plan()
    n = client.lods_planned()
    _log(
        f"{client.stream_url}: {len(m['lods'])} LoDs, {m['total_bytes']:,} bytes (planned from the {client.manifest_source}); "
        f"fetching {n} LoD{'s' if n != 1 else ''}"
    )
    last = None
    for lod, nbytes, res in client.iter_lods():
        _log(
            f"  LoD {lod}: {nbytes:>10,} bytes, {len(res.model.anchors):>8,} anchors, {time.perf_counter() - t0:6.2f} s"
        )
        last = res
    if last is None:
        raise ProgsError(f"no LoD fits: LoD 1 needs {m['lods'][0]['cumulative_bytes']:,} bytes")
    if out.suffix.lower() == ".progs":
        write_bytes_atomic(out, bytes(client.data))
        _log(f"wrote {out} ({len(client.data):,} bytes, LoD {last.lods_decoded} of {last.lods_in_stream})")
        return 0
    from progs.io.ply import write_ply
    from progs.pipeline import export_cloud

    cloud = export_cloud(last.model, distill=distill)
    write_ply(out, cloud)
    _log(
        f"wrote {out} ({len(cloud):,} Gaussians of LoD {last.lods_decoded} of {last.lods_in_stream}; "
        f"{client.stats.bytes_received:,} bytes received in {client.stats.requests} requests)"
    )
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    from progs.stream.server import serve_player

    serve_player(
        args.source,
        args.host,
        args.port,
        max_bytes=args.max_bytes,
        max_lod=args.max_lod,
        open_browser=not args.no_open,
        announce=_log,
    )
    return 0


# ---------------------------------------------------------------------------------------- bench
def _lambda_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(not (v > 0) for v in values):
        raise argparse.ArgumentTypeError(f"expected positive λe values, got {text!r}")
    return values


def cmd_bench(args: argparse.Namespace) -> int:
    from progs.bench.runner import run_bench

    device = _device(args)
    run_bench(
        args.suites or args.suite,
        quick=args.quick,
        out=args.out,
        dataset=args.dataset,
        downscale=args.downscale,
        iterations=args.iterations,
        seed=args.seed,
        log=_log,
        device=device,
        lambdas=args.lambdas,
        fit_iterations=args.fit_iterations,
    )
    return 0


# ----------------------------------------------------------------------------------------- main
def _training_options(
    p: argparse.ArgumentParser,
    iterations: int = 2000,
    base_depth: str = "from the point spacing",
    levels: int | str = 5,
    c2f_samples: int | None = None,
    max_anchors: str = "200000 with SfM points, else one per 5.4 pixels of a training view, at least 2.4x "
    "--init-points",
    init_points: bool = True,
    run_folder: bool = True,
    lambda_e: str = "the trade between bytes and quality (default 0.002; lower: a larger, sharper stream; useful "
    "range 5e-4..4e-3)",
) -> None:
    p.add_argument(
        "--iterations",
        type=int,
        help=f"training iterations (default {iterations}); the rate term trains over the second half, so at the "
        "same --lambda-e more iterations can end on a smaller stream of lower quality",
    )
    p.add_argument("--levels", type=int, help=f"octree levels, that is levels of detail (default: {levels})")
    p.add_argument(
        "--base-depth",
        type=int,
        help=f"octree depth of the coarsest LoD: its cells are the scene's extent / 2^depth (default: {base_depth})",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the training (default 0)")
    p.add_argument(
        "--lambda-e",
        type=float,
        help=f"entropy weight: {lambda_e}",
    )
    if init_points:
        p.add_argument(
            "--init-points",
            type=int,
            help="random initial points when the dataset has no SfM points (default: one per 13 pixels of a "
            "training view, 500..20000)",
        )
    p.add_argument(
        "--c2f-samples",
        type=int,
        help=f"coarser LoDs trained in each step beside the finest (default: {c2f_samples or 'all'}; fewer "
        "train faster, at some cost to the coarse LoDs)",
    )
    p.add_argument("--max-anchors", type=int, help=f"stop growing at about this many anchors (default: {max_anchors})")
    # The method's parts switched off (or InfoNCE on) one at a time, for comparisons such as those in
    # docs/RESULTS.md: working options, left out of --help because each makes the result worse.
    p.add_argument("--no-adjust", action="store_true", help=argparse.SUPPRESS)  # no anchor growing or pruning
    p.add_argument("--infonce", action="store_true", help=argparse.SUPPRESS)  # + ProGS' parent-child InfoNCE loss
    p.add_argument("--no-c2f", action="store_true", help=argparse.SUPPRESS)  # the finest LoD alone, not all at once
    p.add_argument("--no-rate", action="store_true", help=argparse.SUPPRESS)  # no quantization noise, no entropy term
    if run_folder:
        p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
        p.add_argument(
            "--overwrite", action="store_true", help="start afresh in a run folder that already holds a checkpoint"
        )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=500,
        metavar="N",
        help="iterations between checkpoints (default 500; 0: only at the end and on Ctrl-C)",
    )
    _device_option(p, "train")


def _device_option(p: argparse.ArgumentParser, what: str) -> None:
    from progs.device import DEVICE_CHOICES

    p.add_argument(
        "--device",
        default="auto",
        choices=DEVICE_CHOICES,
        help=f"where to {what}: auto (CUDA when available, rendering with gsplat), cpu, or cuda "
        "(default auto; encoding and decoding always run on the CPU)",
    )


def _lod_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lod", type=int, metavar="N", help="level of a streamed SOG to read (0, the default, is the finest)"
    )


UP_AXES = ["x", "y", "z", "-x", "-y", "-z"]
UP_HELP = (
    "the scene's up axis, which the orbit of views turns about (default -y: the axes of scenes from 3DGS "
    "trainers, SuperSplat, PlayCanvas, SPZ and .splat; z for progs' embedded demo scene)"
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="progs",
        description="Progressive, streamable coding of 3D Gaussian Splatting scenes (ProGS).",
    )
    p.add_argument("--version", action="version", version=f"progs {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    d = sub.add_parser("demo", help="train, encode and progressively decode the embedded procedural scene")
    d.add_argument("--out", default="progs-demo", help="output folder (default: progs-demo)")
    d.add_argument("--views", type=int, default=60, help="number of views to render (default 60)")
    d.add_argument("--size", type=int, default=128, help="image width and height in pixels (default 128)")
    d.add_argument("--render-only", action="store_true", help="only render the scene and its contact sheet")
    _add_distill_options(d, size=False)
    _training_options(
        d,
        iterations=DEMO_DEFAULTS["iterations"],
        base_depth=str(DEMO_DEFAULTS["base_depth"]),
        levels=DEMO_DEFAULTS["levels"],
        c2f_samples=DEMO_DEFAULTS["c2f_coarse_samples"],
        max_anchors="200000; the demo scene starts from its own points",
        init_points=False,
        run_folder=False,
    )
    d.set_defaults(func=cmd_demo)

    t = sub.add_parser("train", help="train ProGS on a dataset (COLMAP, transforms.json folder, or 'demo')")
    t.add_argument("dataset", help="dataset folder, a folder name under the data root (e.g. fox), or 'demo'")
    t.add_argument("--out", required=True, help="run folder (checkpoint + run.json)")
    t.add_argument("--downscale", type=float, default=1.0, help="image downscale factor (e.g. 8)")
    t.add_argument(
        "--no-undistort",
        action="store_true",
        help="keep lens-distorted images as they are (default: undistort them on load)",
    )
    t.add_argument("--demo-views", type=int, default=60, help="views of the 'demo' dataset (default 60)")
    t.add_argument("--demo-size", type=int, default=128, help="image size of the 'demo' dataset (default 128)")
    _training_options(t)
    t.set_defaults(func=cmd_train)

    fi = sub.add_parser("fit", help="train ProGS to reproduce an existing 3DGS scene (rendered as the teacher)")
    fi.add_argument(
        "scene",
        help="a 3DGS scene: INRIA .ply (SH degree 0-3), compressed .ply, .spz, .splat, SOG (meta.json, its folder or .sog) or streamed SOG (lod-meta.json or its folder)",
    )
    _lod_option(fi)
    fi.add_argument("--out", required=True, help="run folder")
    fi.add_argument("--views", type=int, help="teacher views on an orbit (default: from the Gaussian count, 60-240)")
    fi.add_argument(
        "--size",
        type=int,
        help="teacher image size (default: a viewer's 1024 pixels, more where the finest Gaussians need it "
        "to span about a pixel, up to 2048; on a CPU the default is at most 512, which --size overrides)",
    )
    fi.add_argument(
        "--eval-size",
        type=int,
        default=1024,
        help="also score the fit on 8 held-out views of this size, as a viewer shows the scene (default 1024; 0: skip)",
    )
    fi.add_argument("--up", default="-y", choices=UP_AXES, help=UP_HELP)
    fi.add_argument("--background", help="background r,g,b in [0,1] (default black)")
    _training_options(
        fi,
        base_depth=f"from the teacher's point spacing, at least {FIT_MIN_BASE_DEPTH}",
        levels=f"as many as the anchor budget fills, at most {FIT_DEFAULTS['levels']}",
        c2f_samples=FIT_DEFAULTS["c2f_coarse_samples"],
        max_anchors=f"{TEACHER_ANCHORS_PER_GAUSSIAN_SH:g} per teacher Gaussian with view-dependent colour (SH "
        f"degree >= 1), {TEACHER_ANCHORS_PER_GAUSSIAN:g} without, at most one per 5.4 pixels of a teacher view",
        init_points=False,
        lambda_e="default 0.002; in a fit it moves the stream little: the training, more than this value, sets "
        "where the learned quantization steps settle",
    )
    fi.set_defaults(func=cmd_fit)

    e = sub.add_parser("eval", help="per-LoD PSNR/SSIM of a run (checkpoint) or of a stream on a dataset")
    e.add_argument("target", help="a run folder or a .progs stream")
    e.add_argument("dataset", nargs="?", help="dataset to evaluate on (required for a stream; 'demo' allowed)")
    e.add_argument("--downscale", type=float, default=1.0, help="image downscale of DATASET (default 1)")
    e.add_argument("--demo-size", type=int, default=128, help="image size when DATASET is 'demo' (default 128)")
    e.add_argument("--demo-views", type=int, default=60, help="views when DATASET is 'demo' (default 60)")
    e.add_argument("--json", action="store_true", help='print {"lods": [...]} as JSON')
    _device_option(e, "render the test views")
    e.set_defaults(func=cmd_eval)

    en = sub.add_parser("encode", help="encode a trained run into a progressive .progs stream (+ manifest)")
    en.add_argument("run", help="run folder from `progs train`/`progs fit`")
    en.add_argument("--out", required=True, help="output .progs file; the manifest goes to OUT.json")
    en.add_argument("--no-eval", action="store_true", help="skip measuring per-LoD quality for the manifest")
    en.set_defaults(func=cmd_encode)

    de = sub.add_parser("decode", help="decode the first K LoDs of a stream into a .ply, .splat, .spz or .glb")
    de.add_argument("stream", help="a .progs file")
    de.add_argument(
        "--lod",
        type=int,
        help="how many LoDs to decode, coarsest first: 1 is LoD 1 alone, 3 is LoDs 1-3 (default: all intact ones)",
    )
    de.add_argument("--out", required=True, help="output .ply, .splat, .spz or .glb (glTF, KHR_gaussian_splatting)")
    de.add_argument(
        "--format", choices=["ply", "splat", "spz", "glb"], help="output format (default: from --out's extension)"
    )
    de.add_argument(
        "--sh-degree",
        type=int,
        default=3,
        choices=[0, 1, 2, 3],
        help="degree of the spherical harmonics fitted to the view-dependent colours (default 3; .splat keeps degree 0)",
    )
    de.add_argument(
        "--check",
        metavar="DATASET",
        help="also print the export fidelity: PSNR of a plain 3DGS render of the output vs progs' own, on DATASET's test views",
    )
    de.add_argument(
        "--cameras-from",
        metavar="DATASET",
        help="fit the view dependence to DATASET's training cameras (default: cameras on a sphere around the scene)",
    )
    de.add_argument(
        "--downscale", type=float, default=1.0, help="image downscale of a --check/--cameras-from dataset (default 1)"
    )
    de.add_argument("--demo-size", type=int, default=128, help="image size when --check is 'demo' (default 128)")
    de.add_argument("--demo-views", type=int, default=60, help="views when --check is 'demo' (default 60)")
    _add_distill_options(de)
    de.set_defaults(func=cmd_decode)

    r = sub.add_parser("render", help="render a 3DGS scene (any format `progs fit` reads) to a PNG or JPEG")
    r.add_argument(
        "scene",
        help="a 3DGS scene: INRIA .ply (SH degree 0-3), compressed .ply, .spz, .splat, SOG (meta.json, its folder or .sog) or streamed SOG (lod-meta.json or its folder)",
    )
    _lod_option(r)
    r.add_argument("--out", required=True, help="output image (.png or .jpg)")
    r.add_argument(
        "--camera-from", metavar="DATASET", help="take the camera from a dataset (COLMAP, transforms.json or 'demo')"
    )
    r.add_argument("--view", type=int, default=0, help="view index in --camera-from (default 0)")
    r.add_argument("--downscale", type=float, default=1.0, help="dataset image downscale factor (default 1)")
    r.add_argument("--width", type=int, help="image width (default 512, or the dataset camera's)")
    r.add_argument("--height", type=int, help="image height (default 512, or the dataset camera's)")
    r.add_argument("--azimuth", type=float, default=-60.0, help="default viewpoint azimuth in degrees")
    r.add_argument("--elevation", type=float, default=30.0, help="default viewpoint elevation in degrees")
    r.add_argument("--up", default="-y", choices=UP_AXES, help=UP_HELP)
    r.add_argument("--background", help="background colour as r,g,b in [0,1] (default black)")
    r.set_defaults(func=cmd_render)

    i = sub.add_parser("info", help="describe a .progs stream: chunks, bytes per component and LoD, anchors")
    i.add_argument("stream", help="a .progs file")
    i.add_argument("--json", action="store_true", help="print JSON instead of a table")
    i.add_argument("--timings", action="store_true", help="also report the decode time of each LoD")
    i.set_defaults(func=cmd_info)

    s = sub.add_parser("serve", help="serve a folder of streams over HTTP (Range requests, ETags, CORS)")
    s.add_argument("dir", help="folder holding .progs streams (and their .progs.json manifests)")
    s.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.set_defaults(func=cmd_serve)

    f = sub.add_parser("fetch", help="fetch a stream LoD by LoD over HTTP under a byte or time budget")
    f.add_argument("url", help="http(s) URL of a .progs stream or of its .progs.json manifest")
    f.add_argument("--out", required=True, help="output: .ply (decoded Gaussians) or .progs (the fetched prefix)")
    f.add_argument("--max-bytes", type=int, help="byte budget, header included (default: the whole stream)")
    f.add_argument("--bandwidth", type=float, help="simulate a link of this many bytes per second")
    f.add_argument("--seconds", type=float, help="with --bandwidth: fetch only the LoDs that arrive in this time")
    f.add_argument("--max-lod", type=int, help="fetch at most this many LoDs")
    _add_distill_options(f)
    f.set_defaults(func=cmd_fetch)

    v = sub.add_parser("view", help="play a stream in the web browser as it streams in (the web player)")
    v.add_argument("source", help="a local .progs file, or the http(s) URL of a stream (or its manifest)")
    v.add_argument("--port", type=int, default=8080, help="port of the player's server (default 8080; 0 picks one)")
    v.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    v.add_argument("--max-bytes", type=int, help="fetch only the LoDs that fit this many bytes, header included")
    v.add_argument("--max-lod", type=int, help="fetch at most this many LoDs")
    v.add_argument("--no-open", action="store_true", help="print the player's address instead of opening a browser")
    v.set_defaults(func=cmd_view)

    b = sub.add_parser(
        "bench",
        help="benchmarks: rate-distortion against SPZ, baselines, bitstream, speed, scaling, the method's parts",
    )
    b.add_argument("suites", nargs="?", help="same as --suite (e.g. `progs bench raster --out DIR`)")
    b.add_argument(
        "--suite",
        default="all",
        help="comma-separated: rd,baselines,bitstream,speed,scaling,ablation,raster,fit or all (default)",
    )
    b.add_argument("--quick", action="store_true", help="small budget (64x64 demo, short trainings; <= 10 min)")
    b.add_argument("--out", default="benchmarks/results", help="output folder (default benchmarks/results)")
    b.add_argument(
        "--dataset", default="demo", help="'demo' (default), a dataset folder, or a name under the data root (e.g. fox)"
    )
    b.add_argument("--downscale", type=float, default=8.0, help="image downscale of a real dataset (default 8)")
    b.add_argument("--iterations", type=int, help="training iterations per model (default: from the profile)")
    b.add_argument("--seed", type=int, default=0, help="random seed of every training and fit (default 0)")
    b.add_argument(
        "--lambdas",
        type=_lambda_list,
        metavar="L1,L2,...",
        help="λe values of the rd suite's sweep (default 5e-4,2e-3,8e-3; other suites use 2e-3)",
    )
    b.add_argument(
        "--fit-iterations",
        type=int,
        metavar="N",
        help="iterations of the plain 3DGS fits behind the SPZ curve (default: as many as progs)",
    )
    _device_option(b, "train and evaluate the ProGS variants and the plain 3DGS fits")
    b.set_defaults(func=cmd_bench)
    # before or after a command that finds a dataset by name
    for parser in (p, *(sub.choices[c] for c in ("train", "eval", "decode", "render", "bench"))):
        parser.add_argument(
            "--data-root",
            metavar="DIR",
            default=argparse.SUPPRESS,
            help="where datasets named by a bare name live (default $PROGS_DATA, else ../shared/data)",
        )
    return p


# Options whose value may start with '-' (argparse would take `--up -y` for two options).
_SIGNED_VALUE_OPTIONS = {"--up": ("-x", "-y", "-z")}


def _join_signed_values(argv: list[str]) -> list[str]:
    """``--up -y`` as ``--up=-y``, so that argparse reads the axis as the option's value."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        values = _SIGNED_VALUE_OPTIONS.get(argv[i])
        if values and i + 1 < len(argv) and argv[i + 1] in values:
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


# Options of experiments that lost (docs/RESULTS.md): named, so that old scripts get a clear line.
_REMOVED_OPTIONS = {
    "--refine-fraction": "level refinement cost the finer LoDs more than it gave LoD 1",
    "--no-infonce": "InfoNCE is off unless --infonce is given",
}


def _removed_option(argv: list[str]) -> str | None:
    for arg in argv:
        name = arg.split("=", 1)[0]
        if name in _REMOVED_OPTIONS:
            return f"{name} no longer exists ({_REMOVED_OPTIONS[name]})"
    return None


def _warn(message: str) -> None:
    print(f"progs: warning: {message}", file=sys.stderr)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as the command line prints it: one line, without Python's source location."""
    _warn(str(message))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    removed = _removed_option(argv)
    if removed:
        print(f"progs: error: {removed}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(_join_signed_values(argv))
    if getattr(args, "data_root", None):
        from progs.io.dataset import DATA_ENV

        os.environ[DATA_ENV] = args.data_root
    try:
        with warnings.catch_warnings():  # restores the caller's warning display on the way out
            warnings.showwarning = _one_line_warning
            return int(args.func(args) or 0)
    except ProgsError as exc:
        print(f"progs: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("progs: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
