"""Package discovery: the core under src/textclf, and the adapters in the repository's fixed top-level folders
(components/, pipelines/, serving/, monitoring/) installed under the one import namespace `textclf.<folder>`,
so the same code runs from a checkout, under kfp.local and in the images. Every folder with an __init__.py is a
package; metadata and dependencies are in pyproject.toml."""

from setuptools import find_packages, setup

ADAPTER_FOLDERS = ("components", "pipelines", "serving", "monitoring")

package_dir = {"textclf": "src/textclf"}
packages = find_packages("src", include=["textclf", "textclf.*"])
for folder in ADAPTER_FOLDERS:
    package_dir[f"textclf.{folder}"] = folder
    packages += [f"textclf.{folder}", *(f"textclf.{folder}.{found}" for found in find_packages(folder))]

setup(package_dir=package_dir, packages=packages)
