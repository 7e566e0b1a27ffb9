"""Our algorithms inside the RL Zoo, without copying or forking rl_zoo3.

* :mod:`~sb3_recurrent_ext.zoo.registry`: :func:`register` adds our algorithms, samplers and converters to
  rl_zoo3's tables and wraps its ``ExperimentManager`` (net specs, merged ``policy_kwargs``, failed trials);
* :mod:`~sb3_recurrent_ext.zoo.config`: the ``zoo_configs`` files and rl-zoo's strings in them;
* :mod:`~sb3_recurrent_ext.zoo.samplers`, ``enqueue``, ``best``, ``resume``, ``storage``, ``cli``: tuning,
  a config entry as a trial, the best trial as an entry, checkpoints, Optuna storage, the command line.
"""

from sb3_recurrent_ext.zoo.config import ZOO_CONFIGS, default_config, parse_policy_kwargs, read_entry
from sb3_recurrent_ext.zoo.registry import (
    CONVERTERS,
    OUR_ALGOS,
    SAMPLERS,
    expand_net_spec,
    merge_sampled,
    register,
    switch_cell,
)

__all__ = [
    "CONVERTERS",
    "OUR_ALGOS",
    "SAMPLERS",
    "ZOO_CONFIGS",
    "default_config",
    "expand_net_spec",
    "merge_sampled",
    "parse_policy_kwargs",
    "read_entry",
    "register",
    "switch_cell",
]
