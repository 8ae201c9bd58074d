"""One package, `diffusion_reward`, whose folder tree is its package tree (sim/ and offline/ included)."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["diffusion_reward", "diffusion_reward.*"]),
    package_data={"": ["*.md", "*.yaml", "*.xml", "*.json", "*.npz", "*.safetensors", "LICENSE-*"]},
    include_package_data=True,
)
