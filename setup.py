"""Builds the wheel with the trained captioners inside the package.

The repository keeps one copy of each shipped model, in saved_models/<name>/
(TF Serving's layout). `build_py` copies every one of them to
sat_keras/saved_models/<name>/ in the build, where
`sat_keras.models.preset_loaders` (which registers their names) finds them in
an installed wheel; an editable install finds saved_models/ beside the package.
Everything else is in setup.cfg.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithModels(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # the clone's saved_models/ is found in place
        names = [name for name in sorted(os.listdir("saved_models"))
                 if os.path.isdir(os.path.join("saved_models", name))]
        if not names:
            raise FileNotFoundError("saved_models/ holds no model: the wheel ships them.")
        for name in names:
            source = os.path.join("saved_models", name)
            target = os.path.join(self.build_lib, "sat_keras", "saved_models", name)
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target)


setup(cmdclass={"build_py": BuildPyWithModels})
