"""The reward types a model can score, torch-free so that parsers and node parameters can name them.

entropy: the paper's Eq. 3, negative conditional entropy of the next frame (sampled chain).
likelihood: the same chain scoring the observed next frame (variational bound of its log-likelihood).
auto: the model's own type, `RewardModel.reward_type` (recorded in the model file; entropy where it is not).
"""
REWARD_TYPES = ("entropy", "likelihood")
REWARD_TYPE_CHOICES = ("auto",) + REWARD_TYPES
REWARD_TYPE_HELP = ("entropy (the paper's Eq. 3), likelihood, or auto: the model's own (likelihood for the shipped "
                    "models, entropy for files that do not say)")
