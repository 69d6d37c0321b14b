"""Ahoy: place calls and send SMS through Twilio on behalf of a mobile app."""
