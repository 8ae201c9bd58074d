"""Packages live in three top-level folders but install under one namespace.

`diffusion_reward/` is the ROS-free core library; `sim/` and `offline/` are installed as
`diffusion_reward.sim` and `diffusion_reward.offline`, so no generic top-level name
(`sim`, `offline`) lands in site-packages.
"""
from setuptools import find_packages, setup

MAPPED = {"diffusion_reward.sim": "sim", "diffusion_reward.offline": "offline"}

packages = find_packages(include=["diffusion_reward", "diffusion_reward.*"])
for name, folder in MAPPED.items():
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]

setup(
    packages=packages,
    package_dir=MAPPED,
    package_data={"": ["*.md", "*.yaml", "*.xml", "*.json", "*.npz", "*.safetensors", "LICENSE-*"]},
    include_package_data=True,
)
