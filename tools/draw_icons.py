"""Draw Propusk's app icons (PNG + SVG) from code: a raised striped barrier arm on a post."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw

Point = tuple[float, float]

OUT_DIR = Path(__file__).resolve().parent.parent / "static" / "icons"

TEAL = "#0f5c7a"
AMBER = "#f2a541"
WHITE = "#ffffff"

# Supersampling factor: shapes are drawn at 4x and LANCZOS-downscaled, because
# ImageDraw itself does not anti-alias polygons.
SS = 4

# --- Motif geometry, in a 100x100 design space shared by the PNGs and the SVG. ---
# The arm is raised (not level) so the icon reads as "the gate is opening".
ARM_ANGLE = -22.0  # degrees, negative = tip up (screen y grows downwards)
PIVOT: Point = (31.0, 50.0)  # where the arm hinges on the post
ARM_BACK = -6.0  # arm tucks just behind the hub so its back end never shows as a lump
ARM_TIP = 60.0  # arm length ahead of the pivot
ARM_HALF = 6.5  # half the arm's thickness; ends are fully rounded
STRIPE_START = 9.0  # first amber stripe begins just past the hub so the hub stays clean
STRIPE_W = 9.0  # amber stripe width along the arm
STRIPE_PERIOD = 18.0  # amber + white = 18, so stripes and gaps are equal
POST = (23.0, 50.0, 39.0, 80.0)  # x0, y0, x1, y1 of the upright
# Short post the arm rests on when lowered; it balances the empty lower right.
REST = (76.0, 66.0, 83.0, 80.0)
REST_R = 3.0
BASE = (15.0, 77.0, 87.0, 83.0)  # ground line under both posts
BASE_R = 3.0
HUB_R = 8.0  # white hub = post half-width, so the post top reads as one rounded shape
BOLT_R = 3.5  # teal bolt in the hub, so the round post top reads as a hinge

# Favicons (32 px PNG and the SVG) get a bigger motif on a slightly tighter tile corner.
FAVICON_MOTIF = 0.96
FAVICON_CORNER = 0.2

# Visual centre of the motif; the PNGs translate this to the middle of the canvas.
MOTIF_CENTRE: Point = (51.0, 54.0)


def rotate(points: Iterable[Point]) -> list[Point]:
    """Map arm-local (u along the arm, v across it) points into design space."""
    a = math.radians(ARM_ANGLE)
    c, s = math.cos(a), math.sin(a)
    px, py = PIVOT
    return [(px + u * c - v * s, py + u * s + v * c) for u, v in points]


def capsule(u0: float, u1: float, half: float, steps: int = 24) -> list[Point]:
    """Return a stadium outline (rounded both ends) in arm-local coordinates."""
    pts: list[Point] = []
    # Right cap sweeps -90..90 degrees, left cap 90..270, giving a closed outline.
    for i in range(steps + 1):
        t = math.pi * (-0.5 + i / steps)
        pts.append((u1 - half + half * math.cos(t), half * math.sin(t)))
    for i in range(steps + 1):
        t = math.pi * (0.5 + i / steps)
        pts.append((u0 + half + half * math.cos(t), half * math.sin(t)))
    return pts


def stripes() -> list[list[Point]]:
    """Return the amber stripe parallelograms in arm-local coordinates (unclipped)."""
    h = ARM_HALF + 2  # overshoot the arm edges; the arm outline clips them
    out: list[list[Point]] = []
    c = STRIPE_START
    while c < ARM_TIP + h:
        # 45-degree slant, the classic hazard-stripe look.
        out.append([(c + h, -h), (c + STRIPE_W + h, -h), (c + STRIPE_W - h, h), (c - h, h)])
        c += STRIPE_PERIOD
    return out


def draw_motif(img: Image.Image, scale: float, centre: Point, *, bolt: bool = True) -> None:
    """Paint the barrier motif onto img, design units scaled by `scale`, centred at `centre`."""
    ox = centre[0] - MOTIF_CENTRE[0] * scale
    oy = centre[1] - MOTIF_CENTRE[1] * scale

    def px(points: Iterable[Point]) -> list[Point]:
        return [(ox + x * scale, oy + y * scale) for x, y in points]

    def box(b: tuple[float, float, float, float]) -> list[float]:
        return [ox + b[0] * scale, oy + b[1] * scale, ox + b[2] * scale, oy + b[3] * scale]

    d = ImageDraw.Draw(img)
    d.rounded_rectangle(box(BASE), radius=BASE_R * scale, fill=WHITE)
    # Square-cornered post: its top hides under the hub, its foot under the ground line.
    d.rectangle(box(POST), fill=WHITE)
    d.rounded_rectangle(box(REST), radius=REST_R * scale, fill=WHITE)

    # The arm is white; amber stripes are drawn into a mask clipped by the arm outline.
    arm_mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(arm_mask).polygon(px(rotate(capsule(ARM_BACK, ARM_TIP, ARM_HALF))), fill=255)
    stripe_mask = Image.new("L", img.size, 0)
    sd = ImageDraw.Draw(stripe_mask)
    for poly in stripes():
        sd.polygon(px(rotate(poly)), fill=255)
    stripe_mask = ImageChops.multiply(stripe_mask, arm_mask)
    img.paste(WHITE, mask=arm_mask)
    img.paste(AMBER, mask=stripe_mask)

    cx, cy = px([PIVOT])[0]
    r = HUB_R * scale
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=WHITE)
    if bolt:
        r = BOLT_R * scale
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=TEAL)


def render(
    size: int, *, motif: float, corner: float | None, opaque: bool = False, bolt: bool = True
) -> Image.Image:
    """Render one icon: `motif` is the motif scale as a fraction of size, `corner` the tile radius.

    corner=None means a full-bleed square background (maskable / apple-touch).
    """
    big = size * SS
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    if corner is None:
        d.rectangle([0, 0, big, big], fill=TEAL)
    else:
        d.rounded_rectangle([0, 0, big - 1, big - 1], radius=corner * big, fill=TEAL)
    draw_motif(img, scale=motif * big / 100.0, centre=(big / 2, big / 2), bolt=bolt)
    out = img.resize((size, size), Image.Resampling.LANCZOS)
    return out.convert("RGB") if opaque else out


def motif_radius(scale: float) -> float:
    """Return the furthest distance (design units * scale) of any motif point from the centre."""
    pts = rotate(capsule(ARM_BACK, ARM_TIP, ARM_HALF))
    for b in (POST, BASE, REST):
        pts += [(b[0], b[1]), (b[2], b[1]), (b[0], b[3]), (b[2], b[3])]
    cx, cy = MOTIF_CENTRE
    return max(math.hypot(x - cx, y - cy) for x, y in pts) * scale


def svg() -> str:
    """Return the hand-written SVG favicon: same motif and layout as favicon-32.png."""
    # Scale about the motif centre and place it mid-viewBox, just like render() does.
    cx, cy = MOTIF_CENTRE
    px_, py_ = PIVOT
    arm_x = px_ + ARM_BACK
    arm_w = ARM_TIP - ARM_BACK
    h = ARM_HALF + 2
    stripe_paths = " ".join(
        f"M{px_ + c + h:g} {py_ - h:g}h{STRIPE_W:g}l{-2 * h:g} {2 * h:g}h{-STRIPE_W:g}z"
        for c in (STRIPE_START + k * STRIPE_PERIOD for k in range(8))
        if c < ARM_TIP + h
    )
    b, p, r = BASE, POST, REST
    return f"""<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">
  <title>Пропуск</title>
  <defs>
    <clipPath id="arm">
      <rect x="{arm_x:g}" y="{py_ - ARM_HALF:g}" width="{arm_w:g}" height="{2 * ARM_HALF:g}" \
rx="{ARM_HALF:g}"/>
    </clipPath>
  </defs>
  <rect width="100" height="100" rx="{FAVICON_CORNER * 100:g}" fill="{TEAL}"/>
  <g transform="translate(50 50) scale({FAVICON_MOTIF:g}) translate({-cx:g} {-cy:g})">
    <rect x="{b[0]:g}" y="{b[1]:g}" width="{b[2] - b[0]:g}" height="{b[3] - b[1]:g}" \
rx="{BASE_R:g}" fill="{WHITE}"/>
    <rect x="{p[0]:g}" y="{p[1]:g}" width="{p[2] - p[0]:g}" height="{p[3] - p[1]:g}" \
fill="{WHITE}"/>
    <rect x="{r[0]:g}" y="{r[1]:g}" width="{r[2] - r[0]:g}" height="{r[3] - r[1]:g}" \
rx="{REST_R:g}" fill="{WHITE}"/>
    <g transform="rotate({ARM_ANGLE:g} {px_:g} {py_:g})">
      <rect x="{arm_x:g}" y="{py_ - ARM_HALF:g}" width="{arm_w:g}" height="{2 * ARM_HALF:g}" \
rx="{ARM_HALF:g}" fill="{WHITE}"/>
      <path clip-path="url(#arm)" fill="{AMBER}" d="{stripe_paths}"/>
    </g>
    <circle cx="{px_:g}" cy="{py_:g}" r="{HUB_R:g}" fill="{WHITE}"/>
  </g>
</svg>
"""


def check_safe_zone(img: Image.Image) -> None:
    """Fail the build if any motif pixel falls outside the maskable safe circle (r = 40%)."""
    # Checked on the real pixels, not the geometry, so anti-aliasing bleed counts too.
    size = img.width
    bg = Image.new("RGB", img.size, TEAL)
    diff = ImageChops.difference(img.convert("RGB"), bg).convert("L")
    outside = Image.new("L", img.size, 255)
    r = 0.40 * size
    ImageDraw.Draw(outside).ellipse([size / 2 - r, size / 2 - r, size / 2 + r, size / 2 + r], 0)
    if ImageChops.multiply(diff, outside).getbbox() is not None:
        raise SystemExit("maskable icon: motif leaks outside the 40% safe zone")


def save_png(img: Image.Image, name: str) -> None:
    """Save without metadata so reruns give byte-identical files."""
    img.save(OUT_DIR / name, format="PNG", optimize=True)


def main() -> None:
    """Write every icon into static/icons/."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    # "any" icons: rounded tile, motif spans ~84% of the design box.
    for size in (192, 512):
        save_png(render(size, motif=0.84, corner=0.225), f"icon-{size}.png")

    # Maskable: the launcher may crop to any shape inside the central circle of
    # radius 40%, so the motif is scaled to sit within it with a small margin.
    scale = 0.35 / motif_radius(1.0)  # fraction of size per design unit
    maskable = render(512, motif=scale * 100, corner=None, opaque=True)
    check_safe_zone(maskable)
    save_png(maskable, "maskable-512.png")

    # iOS rounds and shades the icon itself and shows black for transparency.
    save_png(render(180, motif=0.78, corner=None, opaque=True), "apple-touch-icon.png")
    # Tiny tab icon: larger motif so the stripes survive 32 px, and no bolt, which
    # would only blur into a grey smudge at this size. The SVG favicon matches it.
    save_png(render(32, motif=FAVICON_MOTIF, corner=FAVICON_CORNER, bolt=False), "favicon-32.png")
    (OUT_DIR / "icon.svg").write_text(svg(), encoding="utf-8")


if __name__ == "__main__":
    main()
