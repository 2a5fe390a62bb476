"""tokenshare.producers"""
