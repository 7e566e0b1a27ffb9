from sb3_recurrent_ext.ppo_recurrent_rnd.policies import (
    CnnGruPolicy,
    CnnLstmPolicy,
    MlpGruPolicy,
    MlpLstmPolicy,
    MultiInputGruPolicy,
    MultiInputLstmPolicy,
)
from sb3_recurrent_ext.ppo_recurrent_rnd.ppo_recurrent_rnd import RecurrentPPORND

__all__ = [
    "CnnGruPolicy",
    "CnnLstmPolicy",
    "MlpGruPolicy",
    "MlpLstmPolicy",
    "MultiInputGruPolicy",
    "MultiInputLstmPolicy",
    "RecurrentPPORND",
]
