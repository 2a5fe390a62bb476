"""tokenshare.sinks"""
