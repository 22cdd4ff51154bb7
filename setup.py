"""Package discovery for the layout README.md describes (metadata lives in pyproject.toml).

setuptools cannot list packages from several roots mapped into one namespace in pyproject alone,
so the package list is computed here: everything under platform/qwenflow, plus components/,
pipelines/ and serving/ as qwenflow.components, qwenflow.pipelines and qwenflow.serving.
"""
from setuptools import find_packages, setup

MAPPED = {"components": "qwenflow.components", "pipelines": "qwenflow.pipelines", "serving": "qwenflow.serving"}

packages = find_packages("platform", include=["qwenflow", "qwenflow.*"])
for folder, name in MAPPED.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages)
