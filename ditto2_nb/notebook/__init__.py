"""The notebook side: what the notebooks and tutorials use besides the library's stages.

* :mod:`.plots` -- plotly figures (mels, loss curves, features vs targets, latent evolution);
* :mod:`.widgets` -- :class:`~.widgets.ControlPanel` and :class:`~.widgets.TextPanel`, with headless
  ``run()`` twins;
* :mod:`.tutor` -- the tutorials' exercise checks, with plain-words feedback;
* :mod:`.pipeline` -- ``setup`` / ``record`` for notebooks and the papermill runner of the tour
  (``python -m ditto2_nb.notebook.pipeline``).

Nothing is imported here, so ``import ditto2_nb`` never pulls in plotly, ipywidgets or papermill.
"""
