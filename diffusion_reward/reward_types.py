"""The reward types a model can score, torch-free so that parsers and node parameters can name them.

entropy: the paper's Eq. 3, negative conditional entropy of the next frame (sampled chain).
likelihood: the same chain scoring the observed next frame (variational bound of its log-likelihood).
likelihood_ratio: likelihood of the observed next frame minus that of the current frame held still, on one chain
  (its path does not depend on the scored frame): how much likelier the model finds what happened than "nothing
  moves". A robot that does not move scores exactly 0; the scene's own predictability cancels (VQ-Diffusion only).
auto: the model's own type, `RewardModel.reward_type` (recorded in the model file; where it is not, the paper's:
  entropy for a VQ-Diffusion model, likelihood for a VideoGPT one).
viper: VIPER's reward, log p(f_i | f_{i-2k}, f_{i-k}) of a VideoGPT model: another name for likelihood there.
A VideoGPT model scores likelihood and entropy as its authors do (models/videogpt.py).
"""
REWARD_TYPES = ("entropy", "likelihood", "likelihood_ratio")
SUCCESSOR_TYPES = ("likelihood", "likelihood_ratio")  # types that score the frame that follows (rows wait for it)
REWARD_TYPE_CHOICES = ("auto",) + REWARD_TYPES + ("viper",)
REWARD_TYPE_HELP = ("entropy (the paper's Eq. 3), likelihood, likelihood_ratio (likelihood of the next frame minus "
                    "that of the current frame held still: 0 for a robot that does not move), viper (a VideoGPT "
                    "model's likelihood), or auto: the model's own (recorded in the file; entropy for files that do "
                    "not say)")
