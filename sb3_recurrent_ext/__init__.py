"""sb3-recurrent-ext: memory for Stable-Baselines3 (recurrent nets, recurrent algorithms, RL Zoo)."""

from sb3_recurrent_ext.common.envs import make_memory_env, make_memory_vec_env
from sb3_recurrent_ext.common.masking import MaskableEvalCallback
from sb3_recurrent_ext.common.recurrent.nets import RecurrentNet
from sb3_recurrent_ext.common.recurrent.sequences import SequenceIndex, cut_sequences, make_sequences
from sb3_recurrent_ext.common.recurrent.spec import net_spec_to_kwargs
from sb3_recurrent_ext.common.recurrent.states import RecurrentState
from sb3_recurrent_ext.common.torch_layers import RecurrentNetExtractor
from sb3_recurrent_ext.dqn_recurrent import RecurrentDQN
from sb3_recurrent_ext.dqn_recurrent.distributed import DistributedRecurrentDQN
from sb3_recurrent_ext.ppo_recurrent_rnd import RecurrentPPO, RecurrentPPORND

__version__ = "0.1.0"

__all__ = [
    "DistributedRecurrentDQN",
    "MaskableEvalCallback",
    "RecurrentDQN",
    "RecurrentNet",
    "RecurrentNetExtractor",
    "RecurrentPPO",
    "RecurrentPPORND",
    "RecurrentState",
    "SequenceIndex",
    "cut_sequences",
    "make_memory_env",
    "make_memory_vec_env",
    "make_sequences",
    "net_spec_to_kwargs",
]
