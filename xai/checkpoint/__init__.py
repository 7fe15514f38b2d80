"""Checkpoints: the project's own format, plain state_dicts, whole-model pickles; loaded without running file code.

Kinds of file (LoadedModel.kind):

- project: the project's format (format.py), a safetensors file whose header describes the model (architecture,
  encoder, classes, img_size, normalisation, smp's init arguments); files of the older torch.save project format
  still load. Detected by content, whatever the extension.
- state_dict: a plain state_dict (pickled or safetensors) or a dict holding one ({"model_state_dict": ...});
  the architecture comes from the arguments (config/flags).
- whole_model: `torch.save(model)`, smp 0.3.x pickles naming classes not installed here (pretrainedmodels) included.
  Always rebuilt: inert stand-ins take the place of every class the file names (safe_read.py), the tensors are
  collected by module path and loaded strictly into the smp model built from what the file says (its class, name,
  head activation and init arguments) or the arguments. No class from the file is constructed and nothing runs.
- trusted_pickle: only with trust_checkpoint=True, for files the safe reader refuses (e.g. a user's own model
  class): full unpickling, which runs code from the file; a model whose classes all exist here is used as is.
"""

from __future__ import annotations

from .format import FORMAT, save_checkpoint
from .load import KINDS, LoadedModel, load_model

__all__ = ["FORMAT", "KINDS", "LoadedModel", "load_model", "save_checkpoint"]
