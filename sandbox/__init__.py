"""A local stand-in for the part of Twilio that Ahoy uses, for runs without a Twilio account.

It speaks to Ahoy only over HTTP, as Twilio does, and never imports the app.
"""

from sandbox.server import Account, Sandbox

__all__ = ["Account", "Sandbox"]
