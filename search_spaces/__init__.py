"""Quadratic layers, QuadraNet blocks and networks, baselines and presets.

The lowest layer of the pipeline: imports torch only (Triton lazily, on CUDA).
"""

from search_spaces.arch import ArchConfig, ArchError, BlockArch, StageArch
from search_spaces.blocks import Block, QuadraBlock, mlp_hidden
from search_spaces.elastic import ElasticBlock, QuadraSupernet
from search_spaces.layers import DropPath, LayerNorm2d
from search_spaces.mixers import MIXERS, DWConv, GnConv, QuadraConv, create_mixer, gnconv_dims
from search_spaces.networks import BlockConfig, NetConfig, QuadraNet, StageConfig, count_params, uniform_net
from search_spaces.presets import MODELS, create_model, model_config, model_names, register_model
from search_spaces.quadratic import QUADRATIC_NEURONS, QuadraticNeuron, create_quadratic, quadratic_names
from search_spaces.quadratic_op import QUADRA_BACKENDS, QUADRA_IMPLS, quadratic_dwconv
from search_spaces.space import SPACES, SearchSpace, create_space, load_arch, register_space, space_names
from search_spaces.templates import TEMPLATES, SpaceTemplate, instantiate, template_names

__all__ = [
    "ArchConfig", "ArchError", "BlockArch", "ElasticBlock", "QuadraSupernet", "SPACES", "SearchSpace",
    "StageArch", "create_space", "load_arch", "register_space", "space_names",
    "TEMPLATES", "SpaceTemplate", "instantiate", "template_names",
    "MIXERS", "MODELS", "QUADRATIC_NEURONS", "QUADRA_BACKENDS", "QUADRA_IMPLS",
    "Block", "BlockConfig", "DWConv", "DropPath", "GnConv", "LayerNorm2d", "NetConfig",
    "QuadraBlock", "QuadraConv", "QuadraNet", "QuadraticNeuron", "StageConfig",
    "count_params", "create_mixer", "create_model", "create_quadratic", "gnconv_dims",
    "mlp_hidden", "model_config", "model_names", "quadratic_dwconv", "quadratic_names",
    "register_model", "uniform_net",
]
