"""tokenshare.schema"""
