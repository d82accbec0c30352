"""Hostile submission flood_stdout: expected OUTPUT_LIMIT."""



from hostile import hostile_model


def attack(x=None):
    while True:
        print("flood " * 1000)


Model, fit = hostile_model(attack, 'forward')
