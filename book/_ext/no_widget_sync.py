"""Sphinx extension: keep nbclient from stalling on ipywidgets Output widgets.

When jupyter-book executes a notebook, nbclient mimics the front end's Output widget
(an ipywidgets `interactive` draws into one) and sends every output it captures back to
the kernel on the shell channel, while it is waiting on that same channel for the
cell's execute_reply. Now and then the reply is then not noticed until the poll times
out: the cell "finishes" after exactly the execution timeout (600 s here), kernel and
client idle all along, with no error (jupyter/nbclient#312; measured with
.ci/hang_repro.py under ipykernel 6.31 and 7.4 alike).

A static build does not need the kernel to know the Output widget's outputs: nbclient
keeps them in the widget state that it saves with the notebook either way. So this
extension turns the send-back off; _config.yml enables it:

    sphinx:
      local_extensions:
        no_widget_sync: book/_ext/

Remove it once nbclient no longer sends on the shell channel while polling it.
"""

from __future__ import annotations


def _no_sync(self) -> None:
    """OutputWidget.sync_state without the comm message to the kernel."""


def setup(app):
    try:
        from nbclient.output_widget import OutputWidget
    except ImportError:  # no nbclient, nothing to patch
        pass
    else:
        if hasattr(OutputWidget, "sync_state"):
            OutputWidget.sync_state = _no_sync
    return {"parallel_read_safe": True, "parallel_write_safe": True}
