"""Built-in automations, each a pluggy plugin module registered like any third-party plugin.

- ``messaging``: the ``sms.send`` task (the compliance pipeline) and STOP/START/HELP handling.
- ``missed_call``: ``call.missed`` → a text-back to the caller.
- ``reviews``: the jobs API, ``job.completed`` → a review request after the tenant's delay.
"""
