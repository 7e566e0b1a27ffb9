"""The RL Zoo's `train` command with sb3-recurrent-ext's algorithms registered (see sb3_recurrent_ext.zoo.cli).

python scripts/train.py --algo recurrent_ppo_rnd --env CartPoleNoVel-v1 [any rl_zoo3 option]
"""

from sb3_recurrent_ext.zoo.cli import train

if __name__ == "__main__":
    train()
