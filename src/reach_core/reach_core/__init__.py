"""reach_core: the ROS-free science of reach (Zhang et al. 2017, modular deep Q networks).

Modules, by paper section:
  kinematics        -- Baxter's planar left arm: K(q), K^-1 (section 4, task setup)
  scene             -- the scene configuration Omega and the camera / crop geometry (3.1, 4)
  simulator         -- vectorised reaching environment, reward Eq. 5, success rule (4)
  renderer          -- the simple simulator's images and the crop -> grey -> 84x84 pipeline (4, Fig. 3)
  control           -- the Q-network 5 -> 400 -> 300 -> 9 and its checkpoints (4)
  control_training  -- DQN with K-GPS (Eq. 6, Algorithm 1) and the epsilon-greedy baseline (5.2)
                       (its replay memory and n-step returns: control_replay; its command: control_cli)
  evaluation        -- the 400-trial protocol of Table 2 (5.2)
"""
__version__ = "0.1.0"
