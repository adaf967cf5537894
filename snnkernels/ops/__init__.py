"""Registered ops (``torch.ops.snnkernels.*``): launchers, fake functions and autograd per backend."""
