"""The core: settings, errors, models, phone numbers, TwiML building blocks, the clock and the
composition root. Imports nothing of the layers above it."""
