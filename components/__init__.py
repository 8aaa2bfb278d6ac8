"""KFP v2 components: one folder per step, each a thin adapter over `textclf.steps`."""

from functools import partial

from kfp import dsl

from textclf.names import COMPONENTS_IMAGE

# The components image already holds textclf and kfp, so a step starts without a pip install
# (and works in clusters that cannot reach a package index).
textclf_component = partial(dsl.component, base_image=COMPONENTS_IMAGE, install_kfp_package=False)
