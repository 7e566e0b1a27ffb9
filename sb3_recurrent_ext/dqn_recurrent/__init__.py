from sb3_recurrent_ext.dqn_recurrent.buffers import DictSequenceReplayBuffer, SequenceReplayBuffer, SequenceReplaySamples
from sb3_recurrent_ext.dqn_recurrent.dqn_recurrent import RecurrentDQN
from sb3_recurrent_ext.dqn_recurrent.policies import (
    CnnGruPolicy,
    CnnLstmPolicy,
    MlpGruPolicy,
    MlpLstmPolicy,
    MultiInputGruPolicy,
    MultiInputLstmPolicy,
    RecurrentDQNPolicy,
)
from sb3_recurrent_ext.dqn_recurrent.targets import inverse_value_rescale, n_step_targets, value_rescale

__all__ = [
    "CnnGruPolicy",
    "CnnLstmPolicy",
    "DictSequenceReplayBuffer",
    "MlpGruPolicy",
    "MlpLstmPolicy",
    "MultiInputGruPolicy",
    "MultiInputLstmPolicy",
    "RecurrentDQN",
    "RecurrentDQNPolicy",
    "SequenceReplayBuffer",
    "SequenceReplaySamples",
    "inverse_value_rescale",
    "n_step_targets",
    "value_rescale",
]
