"""Eager references: plain loops over T implementing the equations of docs/. Ground truth for tests."""

from .bn_lif import bn_lif_reference
from .dta import TNAParams, dta_reference, tna_fused_reference, tna_reference, txa_reference
from .leaky import multistep_leaky_reference, multistep_lif_reference, state_dtype
from .ma_snn import multi_dimensional_attention_reference, tcsa_lif_paper_reference
from .staa import STAAParams, staa_lif_reference
from .tcja import conv1d_same, tcja_reference

__all__ = [
    "multistep_leaky_reference",
    "multistep_lif_reference",
    "state_dtype",
    "tcja_reference",
    "conv1d_same",
    "TNAParams",
    "txa_reference",
    "tna_reference",
    "tna_fused_reference",
    "dta_reference",
    "STAAParams",
    "staa_lif_reference",
    "multi_dimensional_attention_reference",
    "tcsa_lif_paper_reference",
    "bn_lif_reference",
]
