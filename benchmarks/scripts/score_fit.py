"""Score a `progs fit` stream the way `progs bench --suite fit` scores its own: each LoD prefix against
the teacher rendered with SH colours at a viewer's 1024² from 8 held-out orbit views, beside SPZ,
decimate+SPZ at the prefixes' sizes and streamed SOG, with the BD-rates and the issue's goal.

    python benchmarks/scripts/score_fit.py SCENE STREAM --out DIR [--lod N] [--up -y] [--what TEXT]

SCENE is what `progs fit` was given (with its `--lod` and `--up`: the held-out views turn about the same
axis as the teacher's orbit). DIR receives results.json; the scratch files (teacher PLY / SPZ, decimated
copies) go to DIR/work, which is not meant to be committed. Needs `npm ci` in benchmarks/ for
splat-transform.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    from progs.bench.common import machine_info, rounded, write_json
    from progs.bench.fit import compare, progs_prefixes
    from progs.codec.container import scan
    from progs.io.splats import read_splats
    from progs.io.teacher import VIEWER_SIZE, viewer_views

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene")
    ap.add_argument("stream")
    ap.add_argument("--out", required=True)
    ap.add_argument("--lod", type=int)
    ap.add_argument("--up", default="-y")
    ap.add_argument("--size", type=int, default=VIEWER_SIZE)
    ap.add_argument("--what", default="")
    args = ap.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cloud = read_splats(args.scene, lod=args.lod)
    views = viewer_views(cloud, args.up, size=args.size)
    data = Path(args.stream).read_bytes()
    bg = torch.zeros(3)
    prefixes = [
        {**r, "psnr": rounded(r["psnr"], 2), "ssim": rounded(r["ssim"], 4)} for r in progs_prefixes(data, views, bg)
    ]
    head = scan(data).chunks[0]
    header = head.offset + head.size  # the preamble and the HEAD chunk
    res = {
        "what": args.what,
        "scene": {
            "source": args.scene,
            "lod": args.lod,
            "up": args.up,
            "gaussians": len(cloud),
            "sh_degree": cloud.sh_degree,
        },
        "viewer": {"views": len(views), "size": args.size, "colours": "SH"},
        "machine": machine_info(),
        "progs": {
            "stream": Path(args.stream).name,
            "total_bytes": len(data),
            "header_bytes": header,
            "prefixes": prefixes,
            "lod1_prefix_share": rounded(prefixes[0]["bytes"] / len(data), 4),
            "lod1_chunk_share": rounded((prefixes[0]["bytes"] - header) / len(data), 4),
        },
    }
    res.update(compare(out / "work", cloud, Path(args.scene), args.lod, views, bg, prefixes))
    quarter = res["spz"]["bytes"] / 4
    top = prefixes[-1]
    res["goal"] = {
        "quarter_spz_bytes": round(quarter),
        "full_stream_within_quarter_spz": top["bytes"] <= quarter,
        "full_stream_psnr": top["psnr"],
        "reaches_35_db": top["psnr"] >= 35.0,
    }
    write_json(out / "results.json", res)
    for r in prefixes:
        print(f"LoD {r['lod']}: {r['bytes']:,} B, {r['psnr']:.2f} dB, SSIM {r['ssim']:.4f}")
    print(
        f"BD-rate vs decimate+SPZ {res.get('bd_rate_vs_decimate_spz')} %, vs streamed SOG "
        f"{res.get('bd_rate_vs_streamed_sog')} %; a quarter of SPZ is {quarter:,.0f} B -> {out / 'results.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
