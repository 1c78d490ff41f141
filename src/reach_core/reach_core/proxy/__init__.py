"""The held-out realistic proxy domain's renderer, one role a module (described, and imported, as
:mod:`reach_core.proxy_renderer`, its public entry point).

Modules:
  seeds          -- the seed split: held-out test seeds, a user's collected seeds, the look stride
  camera         -- PROXY_CAMERA placed by hand, per-frame jitter, the canvas and the lens's maps
  assets         -- pybullet (lazily), Baxter's URDF and decimated meshes (cached), photographs
  room           -- the pybullet world: Baxter, furniture, disc, plate; the wall's and floor's looks
  image_steps    -- textures, the disc's shading, Baxter's face, the lens, the webcam's sensor
  render         -- render_frame and render_proxy (per-thread worlds, input checks, seeds)
  contact_sheet  -- the contact sheet and ``python -m reach_core.proxy_renderer --sheet PATH``
"""
