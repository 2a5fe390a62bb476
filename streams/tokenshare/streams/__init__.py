"""tokenshare.streams"""
