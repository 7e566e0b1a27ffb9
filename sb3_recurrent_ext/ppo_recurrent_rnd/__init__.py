from sb3_recurrent_ext.ppo_recurrent_rnd.policies import (
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
)
from sb3_recurrent_ext.ppo_recurrent_rnd.ppo_recurrent_rnd import RecurrentPPO, RecurrentPPORND

__all__ = [
    "CnnFfmPolicy",
    "CnnGruPolicy",
    "CnnLstmPolicy",
    "CnnMinGruPolicy",
    "MlpFfmPolicy",
    "MlpGruPolicy",
    "MlpLstmPolicy",
    "MlpMinGruPolicy",
    "MultiInputFfmPolicy",
    "MultiInputGruPolicy",
    "MultiInputLstmPolicy",
    "MultiInputMinGruPolicy",
    "RecurrentPPO",
    "RecurrentPPORND",
]
