"""Safety for learned policies on real arms: Franka kinematics and the envelope every command passes."""
from .envelope import ALLEGRO_Q_MAX, ALLEGRO_Q_MIN, ArmCommand, SafeCommand, SafetyConfig, SafetyEnvelope, Stop
from .kinematics import ARMS, FR3, PANDA, ArmModel, FrankaKinematics, IKResult, yaw_matrix

__all__ = ["ALLEGRO_Q_MAX", "ALLEGRO_Q_MIN", "ARMS", "ArmCommand", "ArmModel", "FR3", "FrankaKinematics", "IKResult",
           "PANDA", "SafeCommand", "SafetyConfig", "SafetyEnvelope", "Stop", "yaw_matrix"]
