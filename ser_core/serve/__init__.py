"""The front ends that serve other people: the REST API (:mod:`~ser_core.serve.rest`, FastAPI),
the Gradio demo (:mod:`~ser_core.serve.gradio_app`) and what one request may ask of either
(:mod:`~ser_core.serve.limits`). Adapters from HTTP and Gradio to the library, nothing more;
FastAPI and Gradio are imported only by their own module."""
