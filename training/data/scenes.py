"""Procedural street scenes with exact labels in the 19 Cityscapes train ids (255 = ignore).

numpy and OpenCV only (no torch), so the rosbag tools can draw scenes too. Scene `index` of
`seed` is always the same picture, whatever the order or process that asks for it. Image and
label are drawn together, far objects first, so occlusion is right and labels are exact.
`difficulty` (0-1) scales sensor noise, blur, lighting changes, colour overlap between classes,
clutter and object count, so that a model cannot reach a perfect score from colour alone.
"""
from __future__ import annotations

import cv2
import numpy as np

from bisegunet_ros.classes import CITYSCAPES, IGNORE_INDEX

ID = {name: i for i, name in enumerate(CITYSCAPES.names)}
TRAIN_RENDER_SCALE = 1.25   # training scenes are drawn this much larger than the crop: room to scale


class Canvas:
    """An RGB image and its label map, drawn on together."""

    def __init__(self, height: int, width: int, rng: np.random.Generator, difficulty: float):
        self.h, self.w, self.rng, self.d = height, width, rng, difficulty
        self.rgb = np.zeros((height, width, 3), np.float32)
        self.label = np.full((height, width), IGNORE_INDEX, np.uint8)

    def colour(self, base, spread: float = 25.0) -> np.ndarray:
        """A colour near `base`; higher difficulty widens the spread so classes overlap in colour."""
        return np.clip(np.asarray(base, np.float32) + self.rng.normal(0, spread * (0.5 + self.d), 3), 0, 255)

    def poly(self, points, cls: str, colour) -> None:
        pts = [np.round(np.asarray(points)).astype(np.int32)]
        cv2.fillPoly(self.rgb, pts, [float(v) for v in colour])
        cv2.fillPoly(self.label, pts, self._id(cls))

    def rect(self, x0, y0, x1, y1, cls: str, colour) -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], cls, colour)

    def ellipse(self, cx, cy, rx, ry, cls: str, colour) -> None:
        args = ((int(cx), int(cy)), (max(int(rx), 1), max(int(ry), 1)), 0, 0, 360)
        cv2.ellipse(self.rgb, *args, [float(v) for v in colour], -1)
        cv2.ellipse(self.label, *args, self._id(cls), -1)

    @staticmethod
    def _id(cls: str) -> int:
        return IGNORE_INDEX if cls == "ignore" else ID[cls]


def _depth_scale(c: Canvas, y: float, horizon: float) -> float:
    """Object size at image row y: zero at the horizon, growing towards the bottom."""
    return max((y - horizon) / (c.h - horizon), 0.02)


def _sky_and_background(c: Canvas, horizon: float) -> None:
    top, bottom = c.colour((90, 140, 200), 30), c.colour((200, 210, 225), 20)
    t = np.linspace(0, 1, int(horizon) + 1)[:, None, None]
    c.rgb[: int(horizon) + 1] = top * (1 - t) + bottom * t
    c.label[: int(horizon) + 1] = ID["sky"]
    c.rect(0, horizon, c.w, c.h, "terrain", c.colour((120, 140, 80), 30))


def _buildings(c: Canvas, horizon: float) -> None:
    x = -c.rng.uniform(0, 0.1) * c.w
    while x < c.w:
        width = c.rng.uniform(0.08, 0.3) * c.w
        top = horizon - c.rng.uniform(0.1, 0.9) * horizon
        if c.rng.random() < 0.15:      # a gap shows sky or trees
            x += width * 0.5
            continue
        base = c.colour([(150, 140, 130), (180, 120, 90), (120, 120, 125), (200, 190, 170)][c.rng.integers(4)], 30)
        c.rect(x, top, x + width, horizon + 0.05 * c.h, "building", base)
        rows, cols = c.rng.integers(2, 8), c.rng.integers(2, 6)
        for r in range(rows):
            for k in range(cols):
                wx, wy = x + (k + 0.3) * width / cols, top + (r + 0.3) * (horizon - top) / (rows + 1)
                c.rect(wx, wy, wx + 0.4 * width / cols, wy + 0.35 * (horizon - top) / (rows + 1), "building",
                       base * c.rng.uniform(0.3, 0.7))
        x += width


def _vegetation(c: Canvas, horizon: float, count: int) -> None:
    for _ in range(count):
        cx, cy = c.rng.uniform(0, c.w), horizon - c.rng.uniform(-0.05, 0.35) * c.h
        size = c.rng.uniform(0.03, 0.12) * c.w
        green = c.colour((70, 110, 40), 25)
        c.rect(cx - size * 0.08, cy, cx + size * 0.08, horizon + 0.08 * c.h, "vegetation", c.colour((90, 70, 50), 15))
        for _ in range(c.rng.integers(3, 7)):
            c.ellipse(cx + c.rng.normal(0, size * 0.4), cy + c.rng.normal(0, size * 0.3), size * c.rng.uniform(0.4, 0.8),
                      size * c.rng.uniform(0.3, 0.6), "vegetation", green * c.rng.uniform(0.8, 1.2))


def _road(c: Canvas, horizon: float, vx: float) -> tuple[float, float]:
    """Road and sidewalks in perspective; returns the road's bottom edges."""
    left, right = c.rng.uniform(-0.4, 0.15) * c.w, c.rng.uniform(0.85, 1.4) * c.w
    walk = c.rng.uniform(0.1, 0.35) * c.w
    road_colour = c.colour((90, 90, 95), 15)
    walk_colour = c.colour((150, 145, 140), 20 + 30 * c.d)
    c.poly([(vx - 2, horizon), (vx + 2, horizon), (right + walk, c.h), (left - walk, c.h)], "sidewalk", walk_colour)
    if c.rng.random() < 0.5:  # a low wall or fence along the sidewalk
        cls = "wall" if c.rng.random() < 0.5 else "fence"
        c.poly([(vx - 3, horizon - 2), (vx - 3, horizon), (left - walk, c.h), (left - walk, c.h - 0.25 * c.h)],
               cls, c.colour((130, 120, 110) if cls == "wall" else (110, 100, 90), 25))
    c.poly([(vx - 1, horizon), (vx + 1, horizon), (right, c.h), (left, c.h)], "road", road_colour)
    for lane in (0.5,) if c.rng.random() < 0.6 else (0.33, 0.66):   # dashed markings, part of the road class
        bx = left + lane * (right - left)
        for t0 in np.arange(0.05, 1.0, 0.16):
            t1 = t0 + 0.07
            ya, yb = horizon + t0 * (c.h - horizon), horizon + t1 * (c.h - horizon)
            xa, xb = vx + (bx - vx) * t0, vx + (bx - vx) * t1
            half_a, half_b = 0.004 * c.w * t0, 0.004 * c.w * t1
            c.poly([(xa - half_a, ya), (xa + half_a, ya), (xb + half_b, yb), (xb - half_b, yb)], "road",
                   c.colour((225, 225, 220), 10))
    return left, right


def _pole(c: Canvas, x: float, y: float, horizon: float) -> None:
    s = _depth_scale(c, y, horizon)
    height, width = 0.9 * c.h * s + 4, max(1.0, 0.012 * c.w * s)
    c.rect(x - width, y - height, x + width, y, "pole", c.colour((120, 120, 120), 20))
    top = y - height
    if c.rng.random() < 0.5:
        c.rect(x - 3 * width, top - 6 * width, x + 3 * width, top + 2 * width, "traffic light", c.colour((40, 40, 40), 10))
        lit = [(230, 40, 30), (240, 200, 40), (40, 220, 80)][c.rng.integers(3)]
        c.ellipse(x, top - 2 * width, 1.6 * width, 1.6 * width, "traffic light", c.colour(lit, 10))
    else:
        r = 4 * width
        if c.rng.random() < 0.5:
            c.ellipse(x, top, r, r, "traffic sign", c.colour((200, 30, 30), 30))
        else:
            c.poly([(x - r, top + r), (x + r, top + r), (x, top - r)], "traffic sign", c.colour((240, 200, 30), 30))


def _vehicle(c: Canvas, x: float, y: float, horizon: float, cls: str) -> None:
    s = _depth_scale(c, y, horizon)
    scale = {"car": (0.22, 0.12), "truck": (0.3, 0.22), "bus": (0.4, 0.25), "train": (0.9, 0.25)}[cls]
    w, h = scale[0] * c.w * s, scale[1] * c.h * s * 2
    body = c.colour(c.rng.uniform(20, 235, 3), 20)
    c.rect(x - w / 2, y - h * 0.6, x + w / 2, y, cls, body)
    if cls == "car":
        c.poly([(x - w * 0.35, y - h * 0.6), (x + w * 0.35, y - h * 0.6), (x + w * 0.25, y - h), (x - w * 0.25, y - h)],
               cls, body * 0.9)
        c.rect(x - w * 0.25, y - h * 0.95, x + w * 0.25, y - h * 0.65, cls, c.colour((60, 80, 100), 20))
    else:
        c.rect(x - w / 2, y - h, x + w / 2, y - h * 0.6, cls, body * 1.05)
        c.rect(x - w * 0.45, y - h * 0.95, x + w * 0.45, y - h * 0.7, cls, c.colour((60, 80, 100), 20))
    for wx in (x - w * 0.3, x + w * 0.3):
        c.ellipse(wx, y, w * 0.09, h * 0.12, cls, c.colour((25, 25, 25), 5))


def _person(c: Canvas, x: float, y: float, horizon: float, cls: str = "person") -> None:
    s = _depth_scale(c, y, horizon)
    h = 0.35 * c.h * s + 3
    clothes = c.colour(c.rng.uniform(20, 235, 3), 30)
    c.rect(x - h * 0.06, y - h * 0.45, x - h * 0.01, y, cls, clothes * 0.6)
    c.rect(x + h * 0.01, y - h * 0.45, x + h * 0.06, y, cls, clothes * 0.6)
    c.rect(x - h * 0.1, y - h * 0.85, x + h * 0.1, y - h * 0.42, cls, clothes)
    c.ellipse(x, y - h * 0.92, h * 0.07, h * 0.08, cls, c.colour((200, 160, 130), 25))


def _rider(c: Canvas, x: float, y: float, horizon: float) -> None:
    s = _depth_scale(c, y, horizon)
    size = 0.18 * c.h * s + 2
    vehicle = "motorcycle" if c.rng.random() < 0.4 else "bicycle"
    colour = c.colour((40, 40, 40) if vehicle == "bicycle" else c.rng.uniform(20, 235, 3), 20)
    for wx in (x - size * 0.5, x + size * 0.5):
        c.ellipse(wx, y - size * 0.3, size * 0.3, size * 0.3, vehicle, colour)
    c.rect(x - size * 0.5, y - size * (0.55 if vehicle == "bicycle" else 0.7), x + size * 0.5, y - size * 0.35,
           vehicle, colour)
    _person(c, x, y - size * 0.45, horizon - size * 0.45, "rider")


def _finish(c: Canvas) -> np.ndarray:
    """Texture, lighting, shadows, blur and sensor noise: the image changes, the labels do not."""
    grain = cv2.resize(c.rng.normal(0, 1, (c.h // 4 + 1, c.w // 4 + 1)).astype(np.float32), (c.w, c.h))
    rgb = c.rgb + (6 + 12 * c.d) * (grain + 0.5 * c.rng.normal(0, 1, (c.h, c.w)).astype(np.float32))[..., None]
    if c.rng.random() < 0.5 + 0.4 * c.d:  # a shadow band across the scene
        x0 = c.rng.uniform(0, c.w)
        mask = np.zeros((c.h, c.w), np.uint8)
        cv2.fillPoly(mask, [np.int32([(x0, 0), (x0 + c.w * 0.3, 0), (x0 - c.w * 0.2, c.h), (x0 - c.w * 0.5, c.h)])], 1)
        rgb[mask.astype(bool)] *= c.rng.uniform(0.45, 0.8)
    gain = c.rng.uniform(1 - 0.5 * c.d, 1 + 0.3 * c.d)
    tint = c.rng.uniform(1 - 0.15 * c.d, 1 + 0.15 * c.d, 3)
    rgb = rgb * gain * tint
    sigma = c.d * c.rng.uniform(0, 1.2) * c.w / 256
    if sigma > 0.3:
        rgb = cv2.GaussianBlur(rgb, (0, 0), sigma)
    rgb = rgb + c.rng.normal(0, 2 + 12 * c.d, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def render_scene(seed: int, index: int, height: int, width: int, difficulty: float = 0.6
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8 HxWx3, label uint8 HxW) of scene `index` of `seed`."""
    if not 0 <= difficulty <= 1:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    rng = np.random.default_rng([seed, index])
    c = Canvas(height, width, rng, difficulty)
    horizon = rng.uniform(0.3, 0.5) * height
    vx = rng.uniform(0.3, 0.7) * width
    _sky_and_background(c, horizon)
    _buildings(c, horizon)
    _vegetation(c, horizon, rng.integers(1, 4 + int(6 * difficulty)))
    left, right = _road(c, horizon, vx)
    # objects on the ground, drawn far (near the horizon) to near so nearer ones occlude
    objects = []
    clutter = 1 + difficulty
    for _ in range(rng.poisson(3 * clutter)):
        t = rng.uniform(0.05, 1)
        objects.append((t, "vehicle", rng.choice(["car", "car", "car", "truck", "bus", "train"],
                                                 p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05])))
    for _ in range(rng.poisson(3 * clutter)):
        objects.append((rng.uniform(0.05, 1), "walker", None))
    for _ in range(rng.poisson(2)):
        objects.append((rng.uniform(0.05, 1), "pole", None))
    for _ in range(rng.poisson(1 * clutter)):
        objects.append((rng.uniform(0.1, 1), "rider", None))
    for t, kind, cls in sorted(objects, key=lambda o: o[0]):
        y = horizon + t * (height - horizon)
        road_l, road_r = vx + (left - vx) * t, vx + (right - vx) * t
        if kind == "vehicle":
            _vehicle(c, rng.uniform(road_l, road_r), y, horizon, cls)
        elif kind == "rider":
            _rider(c, rng.uniform(road_l, road_r), y, horizon)
        else:
            side = road_l - rng.uniform(0.02, 0.25) * width * t if rng.random() < 0.5 else \
                road_r + rng.uniform(0.02, 0.25) * width * t
            (_person if kind == "walker" else _pole)(c, side, y, horizon)
    if rng.random() < 0.3:  # the ego vehicle's bonnet is ignored, as in Cityscapes
        c.ellipse(width / 2, height * 1.08, width * 0.6, height * 0.12, "ignore", c.colour((40, 40, 45), 10))
    return _finish(c), c.label
