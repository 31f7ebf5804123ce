"""Training, evaluation, export and data preparation for the SPACE-CLIP decoder.

Not part of the installed package: run the tools from the repository root as modules
(``python -m training.train``, ``torchrun --nproc_per_node=N -m training.train``) so that both
``training`` and ``space_clip_ros`` import without any sys.path manipulation.
"""
