"""Training (trainer loop and its hooks, LR schedule, optimizer groups, checkpoints, AMP) and inference.

Import the pieces from their modules, e.g. `pydetectron.engine.trainer.Trainer`,
`pydetectron.engine.hooks.default_hooks`, `pydetectron.engine.lr_schedule.LRSchedule`,
`pydetectron.engine.checkpoint.load_checkpoint`, `pydetectron.engine.predictor.Predictor`.
"""
