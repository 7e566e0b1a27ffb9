from sb3_recurrent_ext.dqn_recurrent.buffers import DictSequenceReplayBuffer, SequenceReplayBuffer, SequenceReplaySamples
from sb3_recurrent_ext.dqn_recurrent.dqn_recurrent import RecurrentDQN
from sb3_recurrent_ext.dqn_recurrent.policies import (
    CnnFfmPolicy,
    CnnGruPolicy,
    CnnLstmPolicy,
    CnnMinGruPolicy,
    MlpFfmPolicy,
    MlpGruPolicy,
    MlpLstmPolicy,
    MlpMinGruPolicy,
    MultiInputFfmPolicy,
    MultiInputGruPolicy,
    MultiInputLstmPolicy,
    MultiInputMinGruPolicy,
    RecurrentDQNPolicy,
)
from sb3_recurrent_ext.dqn_recurrent.targets import inverse_value_rescale, n_step_targets, value_rescale

__all__ = [
    "CnnFfmPolicy",
    "CnnGruPolicy",
    "CnnLstmPolicy",
    "CnnMinGruPolicy",
    "DictSequenceReplayBuffer",
    "MlpFfmPolicy",
    "MlpGruPolicy",
    "MlpLstmPolicy",
    "MlpMinGruPolicy",
    "MultiInputFfmPolicy",
    "MultiInputGruPolicy",
    "MultiInputLstmPolicy",
    "MultiInputMinGruPolicy",
    "RecurrentDQN",
    "RecurrentDQNPolicy",
    "SequenceReplayBuffer",
    "SequenceReplaySamples",
    "inverse_value_rescale",
    "n_step_targets",
    "value_rescale",
]
