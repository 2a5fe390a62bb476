"""tokenshare.bench"""
