"""Package discovery: the core under src/textclf, and the adapters in the repository's fixed top-level folders
(components/, pipelines/, serving/, monitoring/) installed under the one import namespace `textclf.<folder>`,
so the same code runs from a checkout, under kfp.local and in the images. Every folder is a package, those that
hold only data (compiled pipelines, behavioural suites, the UI's page) included: setuptools warns about a data
folder it was not told about; metadata and dependencies are in pyproject.toml."""

from setuptools import find_namespace_packages, setup

ADAPTER_FOLDERS = ("components", "pipelines", "serving", "monitoring")
NOT_PACKAGES = ["__pycache__", "*.__pycache__", "*.egg-info"]

package_dir = {"textclf": "src/textclf"}
packages = find_namespace_packages("src", include=["textclf", "textclf.*"], exclude=NOT_PACKAGES)
for folder in ADAPTER_FOLDERS:
    package_dir[f"textclf.{folder}"] = folder
    packages += [
        f"textclf.{folder}",
        *(f"textclf.{folder}.{found}" for found in find_namespace_packages(folder, exclude=NOT_PACKAGES)),
    ]

setup(package_dir=package_dir, packages=packages)
